/** The pure decisions of the request core: which answers are refusals, and Retry-After. */
import { describe, expect, it } from "vitest"
import { classifyRefusal, quotaMessage, retryAfterMillis } from "../../src/request/Authorize.js"
import { decodeUsage } from "../../src/api/Usage.js"

const body = (error: Record<string, unknown>) => JSON.stringify({ error })

describe("classifyRefusal", () => {
  it("the 403 usage-limit answer is the quota", () => {
    expect(classifyRefusal(403, body({ message: "You've reached your usage limit for this billing cycle.", type: "permission_denied_error" })))
      .toEqual({ _tag: "QuotaExceeded", status: 403, code: "usage_limit_reached", message: "You've reached your usage limit for this billing cycle." })
  })

  it("exceeded_current_quota_error is the quota, as type or as code, on 429 or 403", () => {
    for (const status of [429, 403]) {
      expect(classifyRefusal(status, body({ message: "quota", type: "exceeded_current_quota_error" }))?._tag).toBe("QuotaExceeded")
      expect(classifyRefusal(status, body({ message: "quota", code: "exceeded_current_quota_error" }))?._tag).toBe("QuotaExceeded")
    }
  })

  it("any other 429 is a rate limit, with its Retry-After", () => {
    expect(classifyRefusal(429, body({ message: "We're receiving too many requests", type: "rate_limit_reached_error" }), "7"))
      .toEqual({ _tag: "RateLimited", status: 429, code: "rate_limit_reached_error", message: "We're receiving too many requests", retryAfterMillis: 7000 })
    expect(classifyRefusal(429, "<html>busy</html>")).toMatchObject({ _tag: "RateLimited", code: "rate_limit_reached_error", retryAfterMillis: undefined })
  })

  it("other answers are not refusals (access_terminated_error is not the quota)", () => {
    expect(classifyRefusal(403, body({ message: "access terminated", type: "access_terminated_error" }))).toBeUndefined()
    expect(classifyRefusal(401, body({ type: "exceeded_current_quota_error" }))).toBeUndefined()
    expect(classifyRefusal(500, "usage limit")).toBeUndefined()
    expect(classifyRefusal(403, "")).toBeUndefined()
  })

  it("keeps no token from the body in its message", () => {
    const r = classifyRefusal(429, body({ message: "bad Bearer eyJhbGciOiJI.eyJzdWIiOiIx.sig access_token=abc123", type: "exceeded_current_quota_error" }))
    expect(r?.message).not.toMatch(/eyJ|abc123/)
  })
})

describe("retryAfterMillis", () => {
  it("reads delta-seconds and HTTP dates, capped at a day; nonsense is undefined", () => {
    expect(retryAfterMillis("2")).toBe(2000)
    expect(retryAfterMillis("0")).toBe(0)
    expect(retryAfterMillis("999999")).toBe(86400_000)
    expect(retryAfterMillis(new Date(10_000).toUTCString(), 4_000)).toBe(6_000)
    expect(retryAfterMillis("-1")).toBeUndefined()
    expect(retryAfterMillis("soon")).toBeUndefined()
    expect(retryAfterMillis(undefined)).toBeUndefined()
  })
})

describe("quotaMessage", () => {
  it("names the window that blocks (the exhausted one that resets last) and its countdown", () => {
    const decoded = decodeUsage({
      usage: { limit: "100", used: "100", resetTime: "2030-01-07T00:00:00Z" },
      limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "20", resetTime: "2030-01-01T05:00:00Z" } }]
    })
    if (decoded._tag !== "Success") throw new Error("decode")
    const now = Date.parse("2030-01-06T22:00:00Z")
    const message = quotaMessage({ _tag: "QuotaExceeded", status: 429, code: "exceeded_current_quota_error", message: "quota" }, decoded.success, now)
    expect(message).toMatch(/\(weekly window: 100 of 100 used\); it resets at \d{4}-\d\d-\d\d \d\d:\d\d UTC([+-]\d{1,2}(:\d\d)?)? \(in 2 h 00 min\)\./)
  })
})
