/**
 * A scripted OAuth token endpoint with Kimi's rotation: every refresh spends
 * the refresh token and issues a new pair; replaying a spent refresh token is
 * answered `invalid_grant` and revokes the whole family (RFC 9700 reuse
 * detection). Also serves `GET /coding/v1/models` for bearer checks.
 */
import { type ScriptedServer, startScriptedServer } from "./scriptedServer.js"

/** The server and what it counted. */
export interface RotatingServer extends ScriptedServer {
  readonly stats: { refreshes: number; reuses: number; revoked: boolean }
  /** The currently valid access tokens. */
  readonly validAccess: Set<string>
}

/** Starts the server; `first` is the refresh token it considers live at start. */
export const startRotatingServer = async (first = "rt-0", options: { readonly delayMs?: number } = {}): Promise<RotatingServer> => {
  const stats = { refreshes: 0, reuses: 0, revoked: false }
  let live = first
  const spent = new Set<string>()
  const validAccess = new Set<string>(["at-0"])
  let n = 0
  const server = await startScriptedServer(async (req) => {
    if (req.path === "/api/oauth/token" && req.form["grant_type"] === "refresh_token") {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs))
      const rt = req.form["refresh_token"] ?? ""
      if (stats.revoked || rt !== live) {
        if (spent.has(rt)) {
          stats.reuses++
          stats.revoked = true
          validAccess.clear()
        }
        return { status: 400, body: { error: "invalid_grant", error_description: "The provided authorization grant is invalid" } }
      }
      stats.refreshes++
      n++
      spent.add(rt)
      live = `rt-${n}`
      validAccess.add(`at-${n}`)
      return {
        status: 200,
        body: { access_token: `at-${n}`, refresh_token: live, expires_in: 900, token_type: "Bearer", scope: "kimi-code" }
      }
    }
    if (req.path === "/coding/v1/models") {
      const token = (req.headers["authorization"] ?? "").replace(/^Bearer /, "")
      return validAccess.has(token)
        ? { status: 200, body: { object: "list", data: [{ id: "kimi-for-coding", context_length: 262144 }] } }
        : { status: 401, body: { error: { message: "invalid token", type: "invalid_authentication_error" } } }
    }
    return { status: 404, body: { error: "not_found" } }
  })
  return Object.assign(server, { stats, validAccess })
}
