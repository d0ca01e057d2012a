/**
 * After Kimi refused a refresh token (`invalid_grant`), the plugin never sends
 * it again in the same OpenCode process, even though OpenCode disposes the
 * plugin's runtime and the next request builds a new one (issue 22: "After a
 * revocation, OpenCode 1 tried the revoked refresh token three more times in
 * one run"). Real files, a loopback token endpoint.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { regionPlugin } from "../../src/opencode/KimiPlugin.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type SlowRotatingServer, startSlowRotatingServer } from "../support/slowRotatingServer.js"

let dir: string
let server: SlowRotatingServer | undefined

beforeEach(() => {
  dir = makeTemp("kimi-plugin-refused-")
})
afterEach(async () => {
  await server?.close()
  server = undefined
  rmTemp(dir)
})

describe("a refresh token Kimi refused", () => {
  it("is sent once per OpenCode process, across runtime rebuilds; every request meanwhile gets the login message", async () => {
    // The server's live refresh token is another one: the stored rt-0 is refused.
    server = await startSlowRotatingServer("rt-9", { answerAfterMs: 0 })
    fs.writeFileSync(
      path.join(dir, "oauth.json"),
      JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: Math.floor(Date.now() / 1000) - 60 }),
      { mode: 0o600 }
    )
    const hooks = await regionPlugin("mainland-cn")({}, { storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` })
    try {
      const options = await hooks.auth.loader(async () => undefined)
      for (let i = 0; i < 4; i++) {
        const response = await options.fetch(`${server.url}/coding/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: "Bearer kimi-oauth", "content-type": "application/json" },
          body: "{}"
        })
        expect(response.status).toBe(401)
        expect(await response.text()).toContain("opencode auth login")
        // OpenCode disposes the plugin between sessions; the next request builds a new runtime.
        await hooks.dispose()
      }
      const refreshes = server.requests.filter((r) => r.path === "/api/oauth/token")
      expect(refreshes).toHaveLength(1)
      // Nothing was deleted.
      expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token).toBe("rt-0")
    } finally {
      await hooks.dispose()
    }
  }, 30_000)
})
