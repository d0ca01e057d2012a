/**
 * The plugin when OpenCode aborts a request (Esc in the TUI, a timeout) while
 * its token refresh is in flight, against a token endpoint that rotates on
 * receipt and answers slowly, with real files: the refresh finishes and is
 * saved, so the login survives the abort.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { regionPlugin } from "../../src/opencode/KimiPlugin.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type SlowRotatingServer, startSlowRotatingServer } from "../support/slowRotatingServer.js"

let dir: string
let server: SlowRotatingServer | undefined
const disposers: Array<() => Promise<void>> = []

beforeEach(() => {
  dir = makeTemp("kimi-plugin-abort-")
})
afterEach(async () => {
  server?.release()
  while (disposers.length) await disposers.pop()!()
  await server?.close()
  server = undefined
  rmTemp(dir)
})

describe("plugin fetch aborted while its refresh is in flight", () => {
  it("the rotated tokens are saved; the login survives", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: 1000 })
    fs.writeFileSync(
      path.join(dir, "oauth.json"),
      JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: Math.floor(Date.now() / 1000) - 60 }),
      { mode: 0o600 }
    )
    const hooks = await regionPlugin("mainland-cn")({}, { storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` })
    disposers.push(hooks.dispose)
    const options = await hooks.auth.loader(async () => undefined)
    const controller = new AbortController()
    const arrival = server.nextArrival()
    const request = options.fetch(`${server.url}/coding/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer kimi-oauth", "content-type": "application/json" },
      body: "{}",
      signal: controller.signal
    }).then((r) => r.status, (e: unknown) => e)
    await arrival
    controller.abort()
    await request
    // Settled: by then the answer was saved (the abort waited for it), or it is saved moments later at most.
    const deadline = Date.now() + 5_000
    while (Date.now() < deadline && JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token !== "rt-1") {
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).refresh_token).toBe("rt-1")
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
  }, 30_000)
})
