/**
 * The plugin's quota message against an account on the new plans (the new
 * `/usages` shape: shares and resets, no counts): through OpenCode 1's fetch
 * (the loader's) and OpenCode 2's `http.response` path (`judgeRefusal`), the
 * message names the used-up window and its reset.
 */
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { KimiAuthPlugin } from "../../src/opencode/KimiPlugin.js"
import { makePluginCore } from "../../src/opencode/PluginCore.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { seedLogin } from "../support/tokens.js"

let dir: string
let server: ScriptedServer | undefined
const disposers: Array<() => Promise<void>> = []
beforeEach(() => {
  dir = makeTemp("kimi-plugin-quota-")
})
afterEach(async () => {
  while (disposers.length) await disposers.pop()!()
  await server?.close()
  server = undefined
  rmTemp(dir)
})

const seed = () => seedLogin(path.join(dir, "oauth.json"), { expiresAt: Math.floor(Date.now() / 1000) + 800 })

const inHours = (h: number) => new Date(Date.now() + h * 3_600_000 + 30_000).toISOString()
const USAGE_LIMIT = "You've reached your usage limit for this billing cycle."

/** Kimi on the new plans: the weekly window used up (the 5-hour one is not), every chat refused 403. */
const newPlansServer = () =>
  startScriptedServer((req) =>
    req.path.endsWith("/usages")
      ? {
        status: 200,
        body: {
          usages: {
            limit_5h: { used_ratio: 0.3, reset_time: inHours(2) },
            limit_7d: { used_ratio: "1", reset_time: inHours(3) },
            limit_month_total: { used_ratio: 0.5, reset_time: inHours(200) },
            limit_month_code: { used_ratio: 0.5, reset_time: inHours(200) }
          }
        }
      }
      : { status: 403, body: { error: { message: USAGE_LIMIT, type: "permission_error" } } }
  )

const WEEKLY_USED_UP =
  /usage limit is used up \(weekly window: 100% used\); it resets at \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in 3 h 00 min\)\. This is not a login problem/

describe("the plugin's quota message on the new plans' /usages shape", () => {
  it("OpenCode 1 (the loader's fetch): a 403 naming the used-up weekly window and its reset", async () => {
    server = await newPlansServer()
    seed()
    const plugin = await KimiAuthPlugin({}, { storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` })
    disposers.push(() => plugin.dispose())
    const options = await plugin.auth.loader(async () => undefined as never)
    const r = await options.fetch!(`${server.url}/coding/v1/chat/completions`, { method: "POST", body: "{}" })
    expect(r.status).toBe(403)
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(WEEKLY_USED_UP)
    expect(server.requests.map((q) => q.path)).toEqual(["/coding/v1/chat/completions", "/coding/v1/usages"])
  })

  it("OpenCode 2 (judgeRefusal on the host's answer): the same message", async () => {
    server = await newPlansServer()
    seed()
    const core = makePluginCore({ options: { storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` }, region: "mainland-cn", providerId: "kimi-code-plan-cn", line: "v2" })
    disposers.push(() => core.dispose())
    const refused = new Response(JSON.stringify({ error: { message: USAGE_LIMIT, type: "permission_error" } }), { status: 403 })
    const r = await core.judgeRefusal(refused, "at-0")
    expect(r.status).toBe(403)
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(WEEKLY_USED_UP)
  })
})
