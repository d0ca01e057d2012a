/**
 * Fuzzing (fast-check) of the Kimi API decoders: `/usages`, `/models`, and
 * streamed chat lines, with arbitrary JSON and near-miss shapes. They never
 * throw; a success always has the documented shape (numbers finite, dates
 * valid); a failure says why without echoing the body.
 */
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeModels, deltasOfLine } from "../../src/api/KimiApi.js"
import { classifyRefusal } from "../../src/request/Authorize.js"
import { decodeUsage } from "../../src/api/Usage.js"
import { canary } from "./support.js"

const RUNS = Number(process.env["KIMI_FUZZ_RUNS"] ?? 10_000)
const SECRET = canary("usagebody")

const quantity = fc.oneof(fc.integer(), fc.double(), fc.integer().map(String), fc.string(), fc.constant(null), fc.constant(SECRET))
const detail = fc.record(
  { limit: quantity, used: quantity, remaining: quantity, resetTime: fc.oneof(fc.date({ noInvalidDate: false }).map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())), fc.string(), fc.integer()) },
  { requiredKeys: [] }
)
const nearMiss = fc.record(
  {
    usage: fc.oneof(detail, fc.anything()),
    limits: fc.oneof(fc.array(fc.oneof(fc.record({ window: fc.record({ duration: quantity, timeUnit: fc.oneof(fc.constantFrom("TIME_UNIT_MINUTE", "TIME_UNIT_HOUR", "TIME_UNIT_DAY", "TIME_UNIT_WEEK"), fc.string()) }, { requiredKeys: [] }), detail }, { requiredKeys: [] }), fc.anything())), fc.anything()),
    user: fc.anything(),
    parallel: fc.oneof(fc.record({ limit: quantity }), fc.anything()),
    boosterWallet: fc.anything()
  },
  { requiredKeys: [] }
)

/** The new plans' shape, near misses included: ratios of any type, windows of any type, a wallet of any shape. */
const ratioWindow = fc.oneof(
  fc.record({ used_ratio: fc.oneof(quantity, fc.double({ min: -2, max: 3 })), reset_time: fc.oneof(fc.date({ noInvalidDate: false }).map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())), fc.string(), fc.integer()) }, { requiredKeys: [] }),
  fc.anything()
)
const price = fc.oneof(fc.record({ priceInCents: quantity, currency: fc.oneof(fc.string(), fc.anything()) }, { requiredKeys: [] }), fc.anything())
const newShape = fc.record(
  {
    usages: fc.oneof(
      fc.record({ limit_5h: ratioWindow, limit_7d: ratioWindow, limit_month_total: ratioWindow, limit_month_code: ratioWindow }, { requiredKeys: [] }),
      fc.anything()
    ),
    boosterWallet: fc.oneof(
      fc.record({
        balance: fc.oneof(fc.record({ type: fc.string(), amount: quantity, amountLeft: quantity }, { requiredKeys: [] }), fc.anything()),
        monthlyChargeLimitEnabled: fc.oneof(fc.boolean(), fc.anything()),
        monthlyChargeLimit: price,
        monthlyUsed: price
      }, { requiredKeys: [] }),
      fc.anything()
    )
  },
  { requiredKeys: [] }
)

const finiteOrUndefined = (n: unknown) => n === undefined || (typeof n === "number" && Number.isFinite(n))

describe("Kimi API decoders under fuzzing", () => {
  it(`decodeUsage: ${RUNS} bodies, never a throw, a valid shape, no echo`, () => {
    fc.assert(
      fc.property(fc.oneof(nearMiss, newShape, fc.anything()), (body) => {
        const r = decodeUsage(body)
        if (r._tag === "Failure") {
          expect(r.failure).not.toContain(SECRET)
          return
        }
        for (const w of r.success.windows) {
          expect(["plan", "rolling", "monthly"]).toContain(w.kind)
          if (w.usedRatio !== undefined) expect(w.usedRatio >= 0 && w.usedRatio <= 1).toBe(true)
          expect(typeof w.label).toBe("string")
          for (const n of [w.limit, w.used, w.remaining, w.durationMinutes]) expect(finiteOrUndefined(n)).toBe(true)
          if (w.resetsAt !== undefined) expect(Number.isNaN(w.resetsAt.getTime())).toBe(false)
        }
        expect(finiteOrUndefined(r.success.parallelLimit)).toBe(true)
        const b = r.success.booster
        if (b !== undefined) {
          for (const n of [b.leftCents, b.totalCents, b.monthlyChargeLimitCents, b.monthlyUsedCents]) {
            expect(n === undefined || (Number.isSafeInteger(n) || Number.isFinite(n))).toBe(true)
          }
        }
      }),
      { numRuns: RUNS }
    )
  })

  it(`decodeModels and deltasOfLine: ${RUNS} bodies each, never a throw`, () => {
    fc.assert(
      fc.property(fc.anything(), fc.oneof(fc.string(), fc.json().map((j) => `data: ${j}`)), (body, line) => {
        const models = decodeModels(body)
        if (models._tag === "Some") for (const m of models.value) expect(m.id.length).toBeGreaterThan(0)
        for (const d of deltasOfLine(line)) {
          expect(d.content === undefined || typeof d.content === "string").toBe(true)
          expect(d.reasoningContent === undefined || typeof d.reasoningContent === "string").toBe(true)
        }
      }),
      { numRuns: RUNS }
    )
  })

  it(`classifyRefusal: ${RUNS} bodies, never a throw, never a bearer in its message`, () => {
    fc.assert(
      fc.property(fc.constantFrom(401, 403, 429, 500), fc.oneof(fc.string(), fc.json(), fc.constant(`{"error":{"message":"Bearer ${SECRET}","type":"exceeded_current_quota_error"}}`)), (status, text) => {
        const r = classifyRefusal(status, text)
        if (r !== undefined) expect(r.message).not.toContain(`Bearer ${SECRET}`)
      }),
      { numRuns: RUNS }
    )
  })
})
