/**
 * The emulator's plan quota: `GET /coding/v1/usages` in Kimi's shape, chat
 * completions counted against both windows, Kimi's refusals when one is used
 * up (403 or 429), the rate-limit switch, and resets driven by the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { chat, request } from "./http.js"

const P = <A>(f: () => Promise<A>) => Effect.promise(f)
const hello = { model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] }
const usages = (base: string, token?: string) =>
  request(`${base}/usages`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

const HOUR = 3600_000

describe("emulator quota", () => {
  it.effect("GET /usages needs a bearer token and answers Kimi's shape, numbers as strings, resets from the Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-11-30T12:00:00.000Z"))
      const emu = yield* KimiEmulator.make({ accessTokenTtlSeconds: 30 * 86400, quota: { fiveHourLimit: 3, weeklyLimit: 10 }, region: "global", usages: "old" })
      const { accessToken } = emu.issueTokens()
      const refused = yield* P(() => usages(emu.apiBaseUrl))
      assert.strictEqual(refused.status, 401)
      assert.strictEqual(refused.json.error.type, "invalid_authentication_error")

      const fresh = yield* P(() => usages(emu.apiBaseUrl, accessToken))
      assert.strictEqual(fresh.status, 200)
      assert.deepStrictEqual(fresh.json, {
        user: { userId: "emu-user-1", region: "global", membership: { level: "LEVEL_BASIC" } },
        usage: { limit: "10", used: "0", remaining: "10", resetTime: "2026-12-07T12:00:00.000Z" },
        limits: [{
          window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" },
          detail: { limit: "3", used: "0", remaining: "3", resetTime: "2026-11-30T17:00:00.000Z" }
        }],
        parallel: { limit: "20" },
        totalQuota: {}
      })

      // The windows start with the first chat; later chats count without moving the reset.
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      yield* TestClock.adjust("1 hour")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      const after = (yield* P(() => usages(emu.apiBaseUrl, accessToken))).json
      assert.deepStrictEqual(after.usage, { limit: "10", used: "2", remaining: "8", resetTime: "2026-12-07T12:00:00.000Z" })
      assert.deepStrictEqual(after.limits[0].detail, {
        limit: "3",
        used: "2",
        remaining: "1",
        resetTime: "2026-11-30T17:00:00.000Z"
      })
      // Reading /usages and failed chats do not count.
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, { ...hello, model: "nope" }))).status, 400)
      assert.strictEqual(emu.quota().fiveHour.used, 2)
    }))

  it.effect("a used-up 5-hour window: 403 with Kimi's billing-cycle message until the window resets", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ accessTokenTtlSeconds: 30 * 86400, quota: { fiveHourLimit: 2, weeklyLimit: 100 } })
      const { accessToken } = emu.issueTokens()
      const start = emu.now()
      for (let i = 0; i < 2; i++) assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      const refused = yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))
      assert.strictEqual(refused.status, 403)
      assert.deepStrictEqual(refused.json, {
        error: { message: KimiEmulator.USAGE_LIMIT_MESSAGE, type: "permission_error" }
      })
      assert.match(refused.json.error.message, /^You've reached your usage limit for this billing cycle/)
      // Streaming requests are refused the same way, before any event.
      const streamed = yield* P(() => chat(emu.apiBaseUrl, accessToken, { ...hello, stream: true }))
      assert.strictEqual(streamed.status, 403)
      assert.deepStrictEqual(emu.requests("/coding/v1/chat/completions").map((r) => r.error), [
        undefined,
        undefined,
        "permission_error",
        "permission_error"
      ])
      const q = emu.quota()
      assert.deepStrictEqual(q.fiveHour, { limit: 2, used: 2, remaining: 0, resetAt: start + 5 * HOUR })
      assert.strictEqual(q.weekly.used, 2)

      yield* TestClock.adjust("4 hours")
      yield* TestClock.adjust("59 minutes")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 403)
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      assert.deepStrictEqual(emu.quota().fiveHour, { limit: 2, used: 1, remaining: 1, resetAt: start + 10 * HOUR })
      assert.strictEqual(emu.quota().weekly.used, 3)
    }))

  it.effect("refusal 429: exceeded_current_quota_error; the weekly window alone also refuses", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ accessTokenTtlSeconds: 30 * 86400, quota: { fiveHourLimit: 50, weeklyLimit: 1, refusal: 429 } })
      const { accessToken } = emu.issueTokens()
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      const refused = yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.json.error.type, "exceeded_current_quota_error")
      assert.strictEqual(refused.json.error.message, KimiEmulator.EXCEEDED_QUOTA_MESSAGE)
      assert.isNull(refused.headers.get("retry-after"))
      // Five hours do not help the weekly window; a week does.
      yield* TestClock.adjust("5 hours")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 429)
      yield* TestClock.adjust("7 days")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
    }))

  it.effect("the handle's switches: exhaust one window or both, reset, change the refusal, rate-limit", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ usages: "old" })
      const { accessToken } = emu.issueTokens()
      const status = () => P(() => chat(emu.apiBaseUrl, accessToken, hello)).pipe(Effect.map((r) => r.status))
      assert.deepStrictEqual(
        { five: emu.quota().fiveHour.limit, week: emu.quota().weekly.limit },
        { five: 100, week: 1000 },
        "defaults"
      )
      emu.exhaustQuota("fiveHour")
      assert.strictEqual(emu.quota().fiveHour.remaining, 0)
      assert.strictEqual(emu.quota().weekly.remaining, 1000)
      assert.strictEqual(yield* status(), 403)
      const shown = (yield* P(() => usages(emu.apiBaseUrl, accessToken))).json
      assert.strictEqual(shown.limits[0].detail.remaining, "0")
      assert.strictEqual(shown.limits[0].detail.resetTime, new Date(emu.now() + 5 * HOUR).toISOString())
      emu.resetQuota()
      assert.strictEqual(yield* status(), 200)
      emu.exhaustQuota()
      emu.setQuota({ refusal: 429 })
      assert.strictEqual(yield* status(), 429)
      emu.resetQuota()
      emu.setQuota({ rateLimited: true, retryAfterSeconds: 9 })
      const limited = yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))
      assert.strictEqual(limited.status, 429)
      assert.deepStrictEqual(limited.json, {
        error: { message: KimiEmulator.RATE_LIMIT_MESSAGE, type: "rate_limit_reached_error" }
      })
      assert.strictEqual(limited.headers.get("retry-after"), "9")
      emu.setQuota({ rateLimited: false, fiveHourLimit: 1, refusal: 403 })
      assert.strictEqual(yield* status(), 200)
      assert.strictEqual(yield* status(), 403)
      // Counted since the last reset: the one 200; the refusal and the rate limit are not.
      assert.strictEqual(emu.quota().weekly.used, 1)
    }))

  it.effect("the new plans' shape by default: every window as a ratio with its reset, the booster wallet; `setQuota` switches shapes", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(Date.parse("2026-11-30T12:00:00.000Z"))
      const emu = yield* KimiEmulator.make({ accessTokenTtlSeconds: 30 * 86400, quota: { fiveHourLimit: 4, weeklyLimit: 10, monthlyLimit: 20 } })
      const { accessToken } = emu.issueTokens()
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 200)
      const body = (yield* P(() => usages(emu.apiBaseUrl, accessToken))).json
      assert.deepStrictEqual(body, {
        usages: {
          limit_5h: { used_ratio: 0.25, reset_time: "2026-11-30T17:00:00.000Z" },
          limit_7d: { used_ratio: 0.1, reset_time: "2026-12-07T12:00:00.000Z" },
          limit_month_total: { used_ratio: 0.05, reset_time: "2026-12-30T12:00:00.000Z" },
          limit_month_code: { used_ratio: 0.05, reset_time: "2026-12-30T12:00:00.000Z" }
        },
        boosterWallet: {
          balance: { type: "BOOSTER", amount: "2000000000", amountLeft: "1250000000" },
          monthlyChargeLimitEnabled: true,
          monthlyChargeLimit: { priceInCents: 2000, currency: "USD" },
          monthlyUsed: { priceInCents: 1750, currency: "USD" }
        }
      })
      emu.exhaustQuota("monthlyCode")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))).status, 403)
      const used = (yield* P(() => usages(emu.apiBaseUrl, accessToken))).json
      assert.strictEqual(used.usages.limit_month_code.used_ratio, 1)
      assert.strictEqual(used.usages.limit_month_total.used_ratio, 0.05)
      emu.setQuota({ usages: "old" })
      const old = (yield* P(() => usages(emu.apiBaseUrl, accessToken))).json
      assert.deepStrictEqual(Object.keys(old).sort(), ["limits", "parallel", "totalQuota", "usage", "user"])
    }))
})
