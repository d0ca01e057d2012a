/** The /usages decoder (lenient) and the helpers that show a window. */
import { describe, expect, it } from "vitest"
import {
  blockingWindow,
  centsOfFixedPoint,
  countdown,
  decodeUsage,
  describeWindow,
  isExhausted,
  type KimiUsage,
  usedFraction,
  windowLabel,
  windowMinutes
} from "../../src/api/Usage.js"
import { BOOSTER_WALLET } from "../../src/emulator/Quota.js"

const decoded = (u: unknown): KimiUsage => {
  const r = decodeUsage(u)
  if (r._tag !== "Success") throw new Error(r.failure)
  return r.success
}

/** Kimi's answer as Moonshot's clients read it. */
const kimi = {
  user: { userId: "u-1", region: "REGION_CN", membership: { level: "LEVEL_INTERMEDIATE" } },
  usage: { limit: "100", used: "13", remaining: "87", resetTime: "2026-12-07T00:00:00.000Z" },
  limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "5", remaining: "15", resetTime: "2026-11-30T19:00:00Z" } }],
  parallel: { limit: "20" },
  totalQuota: {},
  boosterWallet: { balance: "0" }
}

describe("decodeUsage", () => {
  it("reads Kimi's answer: numbers from strings, the weekly window first, rolling windows with their length", () => {
    const u = decoded(kimi)
    expect(u.windows).toEqual([
      { label: "weekly", kind: "plan", durationMinutes: undefined, limit: 100, used: 13, remaining: 87, resetsAt: new Date("2026-12-07T00:00:00.000Z") },
      { label: "5-hour", kind: "rolling", durationMinutes: 300, limit: 20, used: 5, remaining: 15, resetsAt: new Date("2026-11-30T19:00:00Z") }
    ])
    expect(u.user).toEqual({ userId: "u-1", region: "REGION_CN", membershipLevel: "LEVEL_INTERMEDIATE" })
    expect(u.parallelLimit).toBe(20)
    expect(u.boosterWallet).toEqual({ balance: "0" })
  })

  it("is lenient: missing blocks, unknown fields, wrong types and odd entries are dropped, not fatal", () => {
    expect(decoded({})).toEqual({ windows: [], user: undefined, parallelLimit: undefined, boosterWallet: undefined })
    const u = decoded({
      usage: { limit: 100, used: "x", resetTime: "not a date", extra: true },
      limits: [null, 3, { window: { duration: "2", timeUnit: "TIME_UNIT_DAY" } }, { window: { duration: 1, timeUnit: "TIME_UNIT_WEEK" }, detail: { used: "1" } }],
      user: "someone",
      parallel: { limit: "many" },
      newField: { whatever: 1 }
    })
    expect(u.windows).toEqual([
      { label: "weekly", kind: "plan", durationMinutes: undefined, limit: 100, used: undefined, remaining: undefined, resetsAt: undefined },
      { label: "weekly", kind: "rolling", durationMinutes: 10080, limit: undefined, used: 1, remaining: undefined, resetsAt: undefined }
    ])
    expect(u.user).toBeUndefined()
    expect(u.parallelLimit).toBeUndefined()
  })

  it("fails only for something that is not an object, without echoing it", () => {
    for (const bad of [null, "usage", 42, [1]]) {
      const r = decodeUsage(bad)
      expect(r._tag).toBe("Failure")
      if (r._tag === "Failure") expect(r.failure).toBe("the /usages answer is not a JSON object")
    }
  })

  it("derives remaining from limit and used when Kimi leaves it out", () => {
    expect(decoded({ usage: { limit: "10", used: "4" } }).windows[0]!.remaining).toBe(6)
  })
})

describe("window helpers", () => {
  it("names windows by length", () => {
    expect([300, 60, 90, 1440, 2880, 10080, undefined].map(windowLabel)).toEqual(["5-hour", "1-hour", "90-minute", "daily", "2-day", "weekly", "rolling"])
    expect(windowMinutes(5, "TIME_UNIT_HOUR")).toBe(300)
    expect(windowMinutes(5, "TIME_UNIT_FORTNIGHT")).toBeUndefined()
    expect(windowMinutes(0, "TIME_UNIT_HOUR")).toBeUndefined()
    expect(windowMinutes(1.25e305, "TIME_UNIT_DAY")).toBeUndefined() // found by the fuzzer: Infinity minutes
  })

  it("blockingWindow is the exhausted window that resets last; none when nothing is used up", () => {
    expect(blockingWindow(decoded(kimi))).toBeUndefined()
    const both = decoded({
      usage: { limit: "100", used: "100", resetTime: "2026-12-07T00:00:00Z" },
      limits: [{ window: { duration: 300 }, detail: { limit: "20", remaining: "0", resetTime: "2026-11-30T19:00:00Z" } }]
    })
    expect(blockingWindow(both)?.label).toBe("weekly")
    expect(usedFraction(both.windows[0]!)).toBe(1)
  })

  it("countdown reads like a person would say it", () => {
    expect([0, -5, 999, 61_000, 3_600_000 + 5 * 60_000, 2 * 86_400_000 + 3 * 3_600_000].map(countdown))
      .toEqual(["now", "now", "1 s", "1 min 01 s", "1 h 05 min", "2 d 3 h"])
  })
})

/** The new plans' answer (kimi-code 2.1.0 reads only this shape): ratios and resets, and the booster wallet. */
const newPlans = {
  usages: {
    limit_5h: { used_ratio: 0.64, reset_time: "2026-12-06T23:00:00Z" },
    limit_7d: { used_ratio: "0.25", reset_time: "2026-12-10T00:00:00Z" },
    limit_month_total: { used_ratio: 1, reset_time: "2027-01-01T00:00:00Z" },
    limit_month_code: { used_ratio: "0.5", reset_time: "2027-01-01T00:00:00Z" }
  },
  // $20.00 bought, $12.50 left, $17.50 of a $20.00 monthly cap charged: the emulator's wallet.
  boosterWallet: BOOSTER_WALLET
}

describe("decodeUsage: the new plans' shape", () => {
  it("reads every window with its ratio (number or string) and reset, in the order shown, and says which shape it was", () => {
    const u = decoded(newPlans)
    expect(u.shape).toBe("new")
    expect(u.windows.map((w) => [w.key, w.label, w.kind, w.durationMinutes, w.usedRatio, w.resetsAt?.toISOString()])).toEqual([
      ["limit_5h", "5-hour", "rolling", 300, 0.64, "2026-12-06T23:00:00.000Z"],
      ["limit_7d", "weekly", "plan", 10080, 0.25, "2026-12-10T00:00:00.000Z"],
      ["limit_month_total", "monthly total", "monthly", undefined, 1, "2027-01-01T00:00:00.000Z"],
      ["limit_month_code", "monthly code", "monthly", undefined, 0.5, "2027-01-01T00:00:00.000Z"]
    ])
    expect(u.windows.every((w) => w.used === undefined && w.limit === undefined && w.remaining === undefined)).toBe(true)
    expect(u.windows.map(usedFraction)).toEqual([0.64, 0.25, 1, 0.5])
    expect(blockingWindow(u)?.label).toBe("monthly total")
  })

  it("reads the booster wallet: fixed point amounts (1,000,000 per cent) as cents, the monthly charge limit and use", () => {
    expect(decoded(newPlans).booster).toEqual({
      leftCents: 1250,
      totalCents: 2000,
      monthlyChargeLimitEnabled: true,
      monthlyChargeLimitCents: 2000,
      monthlyUsedCents: 1750,
      currency: "USD"
    })
    expect(centsOfFixedPoint(1)).toBe(1) // a positive amount under one cent is one cent, as kimi-code shows it
    expect(centsOfFixedPoint(0)).toBe(0)
    expect(centsOfFixedPoint(-5)).toBe(0)
    expect(centsOfFixedPoint(2_500_000)).toBe(3)
  })

  it("is lenient: a missing window, a ratio out of range or not a number, a bad date, extra keys", () => {
    const u = decoded({
      usages: { limit_5h: { used_ratio: 1.7, reset_time: "soon" }, limit_7d: "x", limit_month_code: { used_ratio: "lots" }, limit_1d: { used_ratio: 0.1 } },
      boosterWallet: { balance: "none", monthlyUsed: { priceInCents: "300" } }
    })
    expect(u.windows.map((w) => [w.label, w.usedRatio, w.resetsAt])).toEqual([["5-hour", 1, undefined], ["monthly code", undefined, undefined]])
    expect(isExhausted(u.windows[0]!)).toBe(true)
    expect(isExhausted(u.windows[1]!)).toBe(false)
    expect(u.booster).toMatchObject({ leftCents: undefined, monthlyUsedCents: 300, monthlyChargeLimitEnabled: undefined })
    expect(decoded({ usages: {} })).toMatchObject({ shape: "new", windows: [] })
    expect(decoded({ usage: { limit: "1" } }).shape).toBe("old")
  })

  it("names a used-up window of the new shape by its share", () => {
    const u = decoded({ usages: { limit_5h: { used_ratio: "1", reset_time: "2026-12-06T23:00:00Z" } } })
    expect(describeWindow(blockingWindow(u)!)).toBe("5-hour window: 100% used")
  })
})
