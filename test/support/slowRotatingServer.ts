/**
 * A token endpoint that rotates on receipt and answers slowly: the moment a
 * refresh request arrives, its refresh token is spent and a new pair is live,
 * then the answer is held back for `answerAfterMs` (or until `release()`).
 * A client that drops the answer has lost the login: replaying the spent
 * refresh token is `invalid_grant` and revokes the family (RFC 9700).
 * `arrived` tells a test the request is in flight (sent, not yet answered).
 */
import { type ScriptedServer, startScriptedServer } from "./scriptedServer.js"

/** The server, what it counted, and the in-flight hooks. */
export interface SlowRotatingServer extends ScriptedServer {
  readonly stats: { refreshes: number; reuses: number; revoked: boolean }
  /** The refresh token the server considers live now. */
  readonly live: () => string
  /** Resolves when the next refresh request arrives (after it has rotated). */
  readonly nextArrival: () => Promise<void>
  /** Answers every refresh held back now. */
  readonly release: () => void
}

/** Starts the server; `first` is the live refresh token at start; `answerAfterMs` Infinity holds answers until `release()`. */
export const startSlowRotatingServer = async (
  first = "rt-0",
  options: { readonly answerAfterMs?: number } = {}
): Promise<SlowRotatingServer> => {
  const stats = { refreshes: 0, reuses: 0, revoked: false }
  let live = first
  const spent = new Set<string>()
  let n = Number(first.replace(/^rt-/, "")) || 0
  let waiters: Array<() => void> = []
  let held: Array<() => void> = []
  const server = await startScriptedServer(async (req) => {
    if (req.path !== "/api/oauth/token" || req.form["grant_type"] !== "refresh_token") return { status: 404, body: { error: "not_found" } }
    const rt = req.form["refresh_token"] ?? ""
    if (stats.revoked || rt !== live) {
      if (spent.has(rt)) {
        stats.reuses++
        stats.revoked = true
      }
      return { status: 400, body: { error: "invalid_grant", error_description: "The provided authorization grant is invalid" } }
    }
    // Rotate on receipt: from here on the sent refresh token is spent, whatever happens to the answer.
    stats.refreshes++
    n++
    spent.add(rt)
    live = `rt-${n}`
    const body = { access_token: `at-${n}`, refresh_token: live, expires_in: 900, token_type: "Bearer", scope: "kimi-code" }
    const arrived = waiters
    waiters = []
    for (const w of arrived) w()
    await new Promise<void>((resolve) => {
      held.push(resolve)
      const after = options.answerAfterMs ?? 1500
      if (Number.isFinite(after)) setTimeout(resolve, after)
    })
    return { status: 200, body }
  })
  return Object.assign(server, {
    stats,
    live: () => live,
    nextArrival: () => new Promise<void>((resolve) => waiters.push(resolve)),
    release: () => {
      const h = held
      held = []
      for (const r of h) r()
    }
  })
}
