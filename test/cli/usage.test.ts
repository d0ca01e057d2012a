/**
 * `kimi-auth usage [--json]` as a real child process with a login on disk:
 * against the emulator (which counts chats against its quota), and a
 * scripted server for exact windows and error answers.
 */
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import * as KimiApi from "../../src/api/KimiApi.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import type { KimiUsage } from "../../src/api/Usage.js"
import { BOOSTER_WALLET } from "../../src/emulator/Quota.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { seedLogin } from "../support/tokens.js"

let home: string
let server: ScriptedServer | undefined
let emu: KimiEmulator.StartedEmulator | undefined
beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await server?.close()
  server = undefined
  await emu?.close()
  emu = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const now = () => Math.floor(Date.now() / 1000)
const seed = (access = "at-0", refresh = "rt-0") => seedLogin(path.join(storage(), "oauth.json"), { access, refresh, expiresAt: now() + 800 })

describe("kimi-auth usage against the emulator", () => {
  const chat = (e: KimiEmulator.StartedEmulator, bearer: string) =>
    fetch(`${e.apiBaseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
    })

  it("text and --json show what the emulator counted", async () => {
    emu = await KimiEmulator.start({ quota: { fiveHourLimit: 4, weeklyLimit: 40 }, usages: "old" })
    const tokens = emu.issueTokens()
    seed(tokens.accessToken, tokens.refreshToken)
    for (let i = 0; i < 3; i++) expect((await chat(emu, tokens.accessToken)).status).toBe(200)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emu.oauthHost, KIMI_CODE_BASE_URL: emu.apiBaseUrl })

    const text = await runCli(["usage"], env)
    expect(text.stderr).toBe("")
    expect(text.code).toBe(0)
    const [weekly, fiveHour] = text.stdout.split("\n")
    expect(weekly).toMatch(/^weekly {2}█{2}░{18} {3}8% {2}3\/40 {2}resets \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in (6 d 23 h|7 d 0 h)\)$/)
    expect(fiveHour).toMatch(/^5-hour {2}█{15}░{5} {2}75% {2}3\/4 {3}resets \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in (4 h 59 min|5 h 00 min)\)$/)

    emu.exhaustQuota("fiveHour")
    const json = await runCli(["usage", "--json"], env)
    expect(json.code).toBe(0)
    const out = JSON.parse(json.stdout)
    const q = emu.quota()
    expect(out.windows.map((w: { label: string; used: number; limit: number; exhausted: boolean }) => [w.label, w.used, w.limit, w.exhausted])).toEqual([
      ["weekly", q.weekly.used, 40, false],
      ["5-hour", 4, 4, true]
    ])
    expect(Date.parse(out.windows[1].resets_at)).toBe(q.fiveHour.resetAt)
    expect(emu.requests("/coding/v1/usages").every((r) => r.bearer === tokens.accessToken && r.msh.deviceId !== undefined)).toBe(true)

    // The facade's usage() and the Effect service give the same windows as the CLI.
    const client = new KimiOAuthClient({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: storage() })
    const viaFacade = await client.usage().finally(() => client.dispose())
    const viaEffect = await Effect.runPromise(
      Effect.flatMap(KimiApi.KimiApi.use(Effect.succeed), (api) => api.usage).pipe(
        Effect.provide(KimiApi.KimiApi.layerNode({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: storage() }).pipe(Layer.orDie))
      )
    )
    const shape = (u: KimiUsage) => u.windows.map((w) => [w.label, w.used, w.limit, w.remaining, w.resetsAt?.toISOString() ?? null])
    const fromCli = out.windows.map((w: { label: string; used: number; limit: number; remaining: number; resets_at: string }) =>
      [w.label, w.used, w.limit, w.remaining, w.resets_at])
    expect(shape(viaFacade)).toEqual(fromCli)
    expect(shape(viaEffect)).toEqual(fromCli)
  })
})

const inHours = (h: number) => new Date(Date.now() + h * 3_600_000 + 30_000).toISOString()
const usages = () => ({
  usage: { limit: "100", used: "25", remaining: "75", resetTime: inHours(50) },
  limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "20", remaining: "0", resetTime: inHours(2) } }],
  parallel: { limit: "20" },
  user: { membership: { level: "LEVEL_INTERMEDIATE" } }
})

const start = async (reply: () => Reply) => {
  server = await startScriptedServer(reply)
  return isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, KIMI_CODE_BASE_URL: `${server.url}/coding/v1` })
}

describe("kimi-auth usage against a scripted server", () => {
  it("text: each window with a bar, used/limit, the local reset time and a countdown; nothing secret", async () => {
    seed()
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage"], env)
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^weekly {2}█{5}░{15} {2}25% {2}25\/100 {2}resets \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in 2 d 2 h\)$/)
    expect(lines[1]).toMatch(/^5-hour {2}█{20} 100% {2}20\/20 {3}resets \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in 2 h 00 min\) {2}used up$/)
    expect(lines[2]).toBe("membership LEVEL_INTERMEDIATE, 20 requests at once")
    expect(r.stdout).not.toMatch(/\x1b\[/)
    expect(server!.requests.map((q) => [q.path, q.headers["authorization"]])).toEqual([["/coding/v1/usages", "Bearer at-0"]])
  })

  it("the reset time names its zone (TZ=Asia/Kolkata: UTC+5:30, TZ=UTC: UTC)", async () => {
    seed()
    const env = await start(() => ({ status: 200, body: usages() }))
    const kolkata = await runCli(["usage"], { ...env, TZ: "Asia/Kolkata" })
    expect(kolkata.code, kolkata.stderr).toBe(0)
    expect(kolkata.stdout.split("\n")[0]).toMatch(/resets \d{4}-\d\d-\d\d \d\d:\d\d UTC\+5:30 \(in/)
    const utc = await runCli(["usage"], { ...env, TZ: "UTC" })
    expect(utc.stdout.split("\n")[0]).toMatch(/resets \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in/)
  })

  it("--json: the same windows for scripts", async () => {
    seed()
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage", "--json"], env)
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.windows).toHaveLength(2)
    expect(out.windows[0]).toMatchObject({ label: "weekly", kind: "plan", limit: 100, used: 25, remaining: 75, used_percent: 25, exhausted: false })
    expect(out.windows[1]).toMatchObject({ label: "5-hour", kind: "rolling", duration_minutes: 300, used_percent: 100, exhausted: true })
    expect(out.windows[1].resets_in_seconds).toBeGreaterThan(7100)
    expect(out.windows[1].resets_in_seconds).toBeLessThanOrEqual(7230)
    expect(Date.parse(out.windows[0].resets_at)).toBeGreaterThan(Date.now())
    expect(out.parallel_limit).toBe(20)
  })

  it("not logged in: exit 7 and the login command, and no request", async () => {
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage", "--json"], env)
    expect(r.code).toBe(7)
    expect(JSON.parse(r.stdout)).toMatchObject({ event: "error", error: "NotLoggedInError" })
    expect(server!.requests).toHaveLength(0)
  })

  it("an error status: exit 6 naming the status and the path", async () => {
    seed()
    const env = await start(() => ({ status: 502, body: "<html>bad gateway</html>" }))
    const r = await runCli(["usage"], env)
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/answered 502 to \/usages/)
  })
})

/** The new plans' answer (kimi-code 2.1.0's shape): shares and resets, no counts, and the booster wallet. */
const newPlans = () => ({
  usages: {
    limit_5h: { used_ratio: 1, reset_time: inHours(2) },
    limit_7d: { used_ratio: "0.25", reset_time: inHours(50) },
    limit_month_total: { used_ratio: 0.4, reset_time: inHours(300) },
    limit_month_code: { used_ratio: "0.1", reset_time: inHours(300) }
  },
  boosterWallet: BOOSTER_WALLET
})

/** `kimi-auth usage`'s lines against a server answering `body`, checked to have succeeded quietly. */
const usageLinesOf = async (body: unknown, flags: ReadonlyArray<string> = []) => {
  seed()
  const r = await runCli(["usage", ...flags], await start(() => ({ status: 200, body })))
  expect(r.stderr).toBe("")
  expect(r.code).toBe(0)
  return r.stdout.trimEnd().split("\n")
}

describe("kimi-auth usage: the new plans' /usages shape", () => {
  const reset = (countdown: string) => `resets \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC([+-]\\d{1,2}(:\\d\\d)?)? \\(in ${countdown}\\)`

  it("text: every window with its share, local reset and countdown; the booster wallet and the monthly charge limit", async () => {
    const lines = await usageLinesOf(newPlans())
    expect(lines[0]).toMatch(new RegExp(`^5-hour {9}█{20} 100% {2}${reset("2 h 00 min")} {2}used up$`))
    expect(lines[1]).toMatch(new RegExp(`^weekly {9}█{5}░{15} {2}25% {2}${reset("2 d 2 h")}$`))
    expect(lines[2]).toMatch(new RegExp(`^monthly total {2}█{8}░{12} {2}40% {2}${reset("12 d 12 h")}$`))
    expect(lines[3]).toMatch(new RegExp(`^monthly code {3}█{2}░{18} {2}10% {2}${reset("12 d 12 h")}$`))
    expect(lines.slice(4)).toEqual(["booster wallet: $12.50 left of $20.00", "monthly charge limit: $17.50 of $20.00 used"])
  })

  it("--json: the windows (not an empty list), their shares and resets, the shape and the booster wallet", async () => {
    const out = JSON.parse((await usageLinesOf(newPlans(), ["--json"])).join("\n"))
    expect(out.shape).toBe("new")
    expect(out.windows.map((w: Record<string, unknown>) => [w["key"], w["label"], w["used_ratio"], w["used_percent"], w["exhausted"]])).toEqual([
      ["limit_5h", "5-hour", 1, 100, true],
      ["limit_7d", "weekly", 0.25, 25, false],
      ["limit_month_total", "monthly total", 0.4, 40, false],
      ["limit_month_code", "monthly code", 0.1, 10, false]
    ])
    expect(out.windows[0]).toMatchObject({ limit: null, used: null, remaining: null, duration_minutes: 300 })
    expect(out.windows[0].resets_in_seconds).toBeGreaterThan(7100)
    expect(out.booster).toEqual({
      left_cents: 1250,
      total_cents: 2000,
      monthly_charge_limit_enabled: true,
      monthly_charge_limit_cents: 2000,
      monthly_used_cents: 1750,
      currency: "USD"
    })
  })

  it("against the emulator's default (new) shape: the facade, the Effect service and the CLI agree", async () => {
    emu = await KimiEmulator.start({ quota: { fiveHourLimit: 4 } })
    const tokens = emu.issueTokens()
    seed(tokens.accessToken, tokens.refreshToken)
    emu.exhaustQuota("fiveHour")
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emu.oauthHost, KIMI_CODE_BASE_URL: emu.apiBaseUrl })
    const out = JSON.parse((await runCli(["usage", "--json"], env)).stdout)
    expect(out.windows.map((w: { label: string; exhausted: boolean }) => [w.label, w.exhausted])).toEqual([
      ["5-hour", true], ["weekly", false], ["monthly total", false], ["monthly code", false]
    ])
    const client = new KimiOAuthClient({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: storage() })
    const viaFacade = await client.usage().finally(() => client.dispose())
    expect(viaFacade.shape).toBe("new")
    expect(viaFacade.windows.map((w) => [w.label, w.usedRatio])).toEqual(
      out.windows.map((w: { label: string; used_ratio: number }) => [w.label, w.used_ratio])
    )
    // The started window's reset is fixed (an unstarted one reports "a window started now").
    expect(viaFacade.windows[0]!.resetsAt?.toISOString()).toBe(out.windows[0].resets_at)
    expect(viaFacade.booster?.leftCents).toBe(1250)
  })
})
