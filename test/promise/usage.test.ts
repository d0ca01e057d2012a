/** The facade's usage(): the same typed data as the CLI and the Effect service, over real HTTP and files. */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

let dir: string
let server: ScriptedServer | undefined
let client: KimiOAuthClient | undefined
beforeEach(() => {
  dir = makeTemp("kimi-facade-usage-")
})
afterEach(async () => {
  await client?.dispose()
  client = undefined
  await server?.close()
  server = undefined
  rmTemp(dir)
})

const seed = () =>
  fs.writeFileSync(
    path.join(dir, "oauth.json"),
    JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", token_type: "Bearer", expires_in: 900, scope: "kimi-code", expires_at: Math.floor(Date.now() / 1000) + 800 }),
    { mode: 0o600 }
  )

describe("KimiOAuthClient.usage", () => {
  it("resolves the windows, typed (numbers, Dates)", async () => {
    server = await startScriptedServer(() => ({
      status: 200,
      body: { usage: { limit: "100", used: "7", remaining: "93", resetTime: "2030-01-01T00:00:00Z" }, limits: [{ window: { duration: 5, timeUnit: "TIME_UNIT_HOUR" }, detail: { limit: "10", used: "1" } }] }
    }))
    seed()
    client = new KimiOAuthClient({ oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1`, storageDir: dir })
    const usage = await client.usage()
    expect(usage.windows.map((w) => [w.label, w.used, w.limit, w.remaining])).toEqual([["weekly", 7, 100, 93], ["5-hour", 1, 10, 9]])
    expect(usage.windows[0]!.resetsAt).toEqual(new Date("2030-01-01T00:00:00Z"))
    expect(server.requests[0]!.headers["authorization"]).toBe("Bearer at-0")
  })

  it("rejects with NOT_LOGGED_IN without a login, and API_ERROR on an error status", async () => {
    server = await startScriptedServer(() => ({ status: 500, body: { error: { message: "down" } } }))
    client = new KimiOAuthClient({ oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1`, storageDir: dir })
    await expect(client.usage()).rejects.toMatchObject({ name: "KimiAuthError", code: "NOT_LOGGED_IN" })
    seed()
    const e = await client.usage().catch((x: unknown) => x)
    expect(e).toBeInstanceOf(KimiAuthError)
    expect(e).toMatchObject({ code: "API_ERROR" })
  })
})
