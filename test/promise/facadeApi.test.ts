/**
 * The facade's Kimi API side over real HTTP and files: usage() (the same
 * typed data as the CLI and the Effect service) and fetch (the same request
 * core as the plugin).
 */
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { seedLogin } from "../support/tokens.js"

let dir: string
let server: ScriptedServer | undefined
let client: KimiOAuthClient | undefined
let emu: KimiEmulator.StartedEmulator | undefined
beforeEach(() => {
  dir = makeTemp("kimi-facade-usage-")
})
afterEach(async () => {
  await client?.dispose()
  client = undefined
  await server?.close()
  server = undefined
  await emu?.close()
  emu = undefined
  rmTemp(dir)
})

const seed = (access = "at-0", refresh = "rt-0") =>
  seedLogin(path.join(dir, "oauth.json"), { access, refresh, expiresAt: Math.floor(Date.now() / 1000) + 800 })

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

describe("KimiOAuthClient.fetch", () => {
  const chat = (c: KimiOAuthClient, base: string, content: string) =>
    c.fetch(`${base}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content }] })
    })

  it("authorizes Kimi requests (bearer, identity headers), heals a 401 once, and leaves other URLs alone", async () => {
    emu = await KimiEmulator.start()
    const tokens = emu.issueTokens()
    seed(tokens.accessToken, tokens.refreshToken)
    client = new KimiOAuthClient({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const first = await chat(client, emu.apiBaseUrl, "one")
    expect(first.status).toBe(200)
    expect((await first.json()).choices[0].message.content).toBe(`${KimiEmulator.GREETING}. You said: one`)
    emu.expireAccessTokens()
    expect((await chat(client, emu.apiBaseUrl, "two")).status).toBe(200)
    const chats = emu.requests("/coding/v1/chat/completions")
    expect(chats.map((r) => r.status)).toEqual([200, 401, 200])
    expect(chats.every((r) => r.msh.platform === "kimi_cli" && r.msh.deviceId !== undefined)).toBe(true)
    expect(emu.requests("/api/oauth/token")).toHaveLength(1)
    // The emulator's root is not below the API base: sent as given, without a bearer.
    const other = await client.fetch(`${emu.url}/`)
    expect(other.status).toBe(200)
    expect(emu.requests("/").at(-1)?.bearer).toBeUndefined()
  })

  it("no login: a 401 error response naming the login command, and nothing sent", async () => {
    emu = await KimiEmulator.start()
    client = new KimiOAuthClient({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const r = await chat(client, emu.apiBaseUrl, "x")
    expect(r.status).toBe(401)
    expect((await r.json()).error.message).toMatch(/kimi-auth login/)
    expect(emu.requests("/coding/v1/chat/completions")).toHaveLength(0)
  })
})

describe("KimiOAuthClient on the new plans' /usages shape", () => {
  const inHours = (h: number) => new Date(Date.now() + h * 3_600_000 + 30_000).toISOString()
  const newPlans = {
    usages: {
      limit_5h: { used_ratio: "1", reset_time: inHours(2) },
      limit_7d: { used_ratio: 0.5, reset_time: inHours(40) },
      limit_month_total: { used_ratio: 0.2, reset_time: inHours(300) },
      limit_month_code: { used_ratio: 0.1, reset_time: inHours(300) }
    },
    boosterWallet: { balance: { type: "BOOSTER", amount: "1000000000", amountLeft: "1" }, monthlyChargeLimitEnabled: false }
  }

  it("fetch: the quota answer names the used-up 5-hour window and its reset", async () => {
    server = await startScriptedServer((req) =>
      req.path.endsWith("/usages")
        ? { status: 200, body: newPlans }
        : { status: 429, body: { error: { message: "You exceeded your current quota.", type: "exceeded_current_quota_error" } } }
    )
    seed()
    client = new KimiOAuthClient({ oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1`, storageDir: dir })
    const r = await client.fetch(`${server.url}/coding/v1/chat/completions`, { method: "POST", body: "{}" })
    expect(r.status).toBe(403)
    expect((await r.json()).error.message).toMatch(
      /usage limit is used up \(5-hour window: 100% used\); it resets at \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in 2 h 00 min\)\./
    )
  })

  it("usage(): every window typed (shares, Dates), the shape, and the booster wallet in cents", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: newPlans }))
    seed()
    client = new KimiOAuthClient({ oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1`, storageDir: dir })
    const usage = await client.usage()
    expect(usage.shape).toBe("new")
    expect(usage.windows.map((w) => [w.label, w.usedRatio])).toEqual([["5-hour", 1], ["weekly", 0.5], ["monthly total", 0.2], ["monthly code", 0.1]])
    expect(usage.windows[0]!.resetsAt).toBeInstanceOf(Date)
    expect(usage.booster).toMatchObject({ leftCents: 1, totalCents: 1000, monthlyChargeLimitEnabled: false })
  })
})
