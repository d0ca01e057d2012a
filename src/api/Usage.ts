/**
 * The plan's quota as Kimi serves it at `GET {API base}/usages`, decoded
 * leniently in both of its shapes, and the small pure helpers every edge
 * shows it with. The one decoder: the CLI, the facade, the Effect `KimiApi`
 * and every quota refusal (through `UsageReader.ts`) read `/usages` with it.
 *
 * The old shape (as Moonshot's clients read it until September 2026; numbers
 * arrive as strings): `usage` is the weekly window `{limit, used, remaining,
 * resetTime}`; `limits[]` are rolling windows `{window: {duration, timeUnit},
 * detail: {…}}` (`300` × `TIME_UNIT_MINUTE` is the 5-hour window); `user`,
 * `parallel` and `boosterWallet` are optional.
 *
 * The new plans' shape (kimi-code 2.1.0 reads only this one):
 * `usages.{limit_5h, limit_7d, limit_month_total, limit_month_code}`, each
 * `{used_ratio (0..1, number or string), reset_time}`, with no counts, plus a
 * `boosterWallet` whose amounts are fixed point, 1,000,000 per cent. When
 * `usages` is an object the answer is read as the new shape, else as the old.
 *
 * Fields come and go, so every field is optional, a field of the wrong type is
 * dropped instead of failing the whole answer, and unknown fields are
 * ignored. Only a body that is not a JSON object at all fails.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { BoosterWallet, KimiUsage, QuotaWindow } from "./UsageModel.js"

// ---------------------------------------------------------------------------
// The wire shape

/** A number, or a string holding one (Kimi sends `"100"`). */
const Quantity = Schema.Union([Schema.Finite, Schema.FiniteFromString])

/** An optional field that is dropped, not fatal, when it has the wrong type. */
const lenient = <S extends Schema.Top>(schema: S) =>
  Schema.optionalKey(schema.pipe(Schema.catchDecoding(() => Effect.succeedNone)))

/** One window's counters, as sent. */
export const UsageDetailJson = Schema.Struct({
  limit: lenient(Quantity),
  used: lenient(Quantity),
  remaining: lenient(Quantity),
  resetTime: lenient(Schema.String)
})

/** One rolling window, as sent. */
export const UsageLimitJson = Schema.Struct({
  window: lenient(Schema.Struct({ duration: lenient(Quantity), timeUnit: lenient(Schema.String) })),
  detail: lenient(UsageDetailJson)
})

/** One window of the new shape, as sent (`used_ratio` 0..1, a number or a string). */
export const RatioWindowJson = Schema.Struct({
  used_ratio: lenient(Quantity),
  reset_time: lenient(Schema.String)
})

/** An amount of the booster wallet: fixed point, 1,000,000 per cent, as a string or a number. */
const PriceJson = Schema.Struct({ priceInCents: lenient(Quantity), currency: lenient(Schema.String) })

/** The booster wallet of the new plans, as sent. */
export const BoosterWalletJson = Schema.Struct({
  balance: lenient(Schema.Struct({ type: lenient(Schema.String), amount: lenient(Quantity), amountLeft: lenient(Quantity) })),
  monthlyChargeLimitEnabled: lenient(Schema.Boolean),
  monthlyChargeLimit: lenient(PriceJson),
  monthlyUsed: lenient(PriceJson)
})

/** The whole `/usages` answer, as sent (only the fields this package reads). */
export const UsagesJson = Schema.Struct({
  usages: lenient(Schema.Record(Schema.String, Schema.Unknown)),
  user: lenient(Schema.Struct({
    userId: lenient(Schema.String),
    region: lenient(Schema.String),
    membership: lenient(Schema.Struct({ level: lenient(Schema.String) }))
  })),
  usage: lenient(UsageDetailJson),
  limits: lenient(Schema.Array(Schema.Unknown)),
  parallel: lenient(Schema.Struct({ limit: lenient(Quantity) })),
  boosterWallet: lenient(Schema.Record(Schema.String, Schema.Unknown))
})

/** The decoded wire shape. */
export type UsagesJson = typeof UsagesJson.Type

// ---------------------------------------------------------------------------
// The model the edges use

// The model: its types live in UsageModel.ts (effect-free, for the facade's declarations).
export type { BoosterWallet, KimiUsage, QuotaWindow } from "./UsageModel.js"

const MINUTES: Readonly<Record<string, number>> = {
  TIME_UNIT_SECOND: 1 / 60,
  TIME_UNIT_MINUTE: 1,
  TIME_UNIT_HOUR: 60,
  TIME_UNIT_DAY: 1440,
  TIME_UNIT_WEEK: 10080
}

/** Minutes of `duration` × `timeUnit` (`TIME_UNIT_MINUTE`…`TIME_UNIT_WEEK`); `undefined` when unknown. */
export const windowMinutes = (duration: number | undefined, timeUnit: string | undefined): number | undefined => {
  if (duration === undefined || !(duration > 0)) return undefined
  const unit = MINUTES[(timeUnit ?? "TIME_UNIT_MINUTE").toUpperCase()]
  const minutes = unit === undefined ? undefined : duration * unit
  return minutes !== undefined && Number.isFinite(minutes) ? minutes : undefined
}

/** A window's name from its length: `5-hour`, `daily`, `weekly`, `90-minute`. */
export const windowLabel = (minutes: number | undefined): string => {
  if (minutes === undefined) return "rolling"
  const as = (size: number, one: string, unit: string) => {
    const n = minutes / size
    return n === 1 ? one : `${n}-${unit}`
  }
  if (minutes % 10080 === 0) return as(10080, "weekly", "week")
  if (minutes % 1440 === 0) return as(1440, "daily", "day")
  if (minutes % 60 === 0) return `${minutes / 60}-hour`
  return `${Math.round(minutes)}-minute`
}

const toDate = (s: string | undefined): Date | undefined => {
  if (s === undefined) return undefined
  const d = new Date(s)
  return Number.isNaN(d.getTime()) ? undefined : d
}

const windowOf = (
  detail: typeof UsageDetailJson.Type,
  kind: QuotaWindow["kind"],
  durationMinutes: number | undefined
): QuotaWindow => ({
  label: kind === "plan" ? "weekly" : windowLabel(durationMinutes),
  kind,
  durationMinutes,
  limit: detail.limit,
  used: detail.used,
  remaining: detail.remaining ?? (detail.limit !== undefined && detail.used !== undefined
    ? Math.max(0, detail.limit - detail.used)
    : undefined),
  resetsAt: toDate(detail.resetTime)
})

const decodeLimit = Schema.decodeUnknownOption(UsageLimitJson)
const decodeRatioWindow = Schema.decodeUnknownOption(RatioWindowJson)
const decodeBooster = Schema.decodeUnknownOption(BoosterWalletJson)

/** The new shape's windows, in the order they are shown. */
const NEW_SHAPE_WINDOWS: ReadonlyArray<{
  readonly key: string
  readonly label: string
  readonly kind: QuotaWindow["kind"]
  readonly durationMinutes: number | undefined
}> = [
  { key: "limit_5h", label: "5-hour", kind: "rolling", durationMinutes: 300 },
  { key: "limit_7d", label: "weekly", kind: "plan", durationMinutes: 10080 },
  { key: "limit_month_total", label: "monthly total", kind: "monthly", durationMinutes: undefined },
  { key: "limit_month_code", label: "monthly code", kind: "monthly", durationMinutes: undefined }
]

/** A `used_ratio` as a share from 0 to 1 (clamped); `undefined` when it is not a number. */
const ratioOf = (value: number | undefined): number | undefined =>
  value === undefined || !Number.isFinite(value) ? undefined : Math.min(1, Math.max(0, value))

/** The old shape's windows: the weekly `usage` first, then `limits[]` (an entry that is not an object is skipped). */
const oldWindows = (json: UsagesJson): Array<QuotaWindow> => {
  const windows: Array<QuotaWindow> = []
  if (json.usage !== undefined) windows.push(windowOf(json.usage, "plan", undefined))
  for (const raw of json.limits ?? []) {
    const entry = decodeLimit(raw)
    if (entry._tag === "None" || entry.value.detail === undefined) continue
    const w = entry.value.window
    windows.push(windowOf(entry.value.detail, "rolling", windowMinutes(w?.duration, w?.timeUnit)))
  }
  return windows
}

/** The new shape's windows that were sent (an entry that is not an object is skipped). */
const newWindows = (usages: Readonly<Record<string, unknown>>): Array<QuotaWindow> =>
  NEW_SHAPE_WINDOWS.flatMap((known) => {
    const entry = Object.hasOwn(usages, known.key) ? decodeRatioWindow(usages[known.key]) : undefined
    if (entry === undefined || entry._tag === "None") return []
    return [{
      label: known.label,
      kind: known.kind,
      durationMinutes: known.durationMinutes,
      limit: undefined,
      used: undefined,
      remaining: undefined,
      resetsAt: toDate(entry.value.reset_time),
      usedRatio: ratioOf(entry.value.used_ratio),
      key: known.key
    }]
  })

/** A fixed-point amount (1,000,000 per cent) as whole cents; a positive amount under a cent is one cent. */
export const centsOfFixedPoint = (amount: number | undefined): number | undefined => {
  if (amount === undefined || !Number.isFinite(amount)) return undefined
  if (amount <= 0) return 0
  return Math.max(1, Math.round(amount / 1_000_000))
}

const wholeCents = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? undefined : Math.round(n))

/** The booster wallet read from what was sent; `undefined` when it is not an object. */
const boosterOf = (raw: unknown): BoosterWallet | undefined => {
  const decoded = raw === undefined ? undefined : decodeBooster(raw)
  if (decoded === undefined || decoded._tag === "None") return undefined
  const b = decoded.value
  return {
    leftCents: centsOfFixedPoint(b.balance?.amountLeft),
    totalCents: centsOfFixedPoint(b.balance?.amount),
    monthlyChargeLimitEnabled: b.monthlyChargeLimitEnabled,
    monthlyChargeLimitCents: wholeCents(b.monthlyChargeLimit?.priceInCents),
    monthlyUsedCents: wholeCents(b.monthlyUsed?.priceInCents),
    currency: b.monthlyChargeLimit?.currency ?? b.monthlyUsed?.currency
  }
}

/** The model from the decoded wire shape, whichever of the two it is. */
export const fromJson = (json: UsagesJson): KimiUsage => {
  const isNew = json.usages !== undefined
  const windows = isNew ? newWindows(json.usages!) : oldWindows(json)
  const shape = isNew ? "new" : json.usage !== undefined || json.limits !== undefined ? "old" : undefined
  const booster = boosterOf(json.boosterWallet)
  const u = json.user
  return {
    ...(shape !== undefined ? { shape } : {}),
    ...(booster !== undefined ? { booster } : {}),
    windows,
    user: u === undefined ? undefined : {
      ...(u.userId !== undefined ? { userId: u.userId } : {}),
      ...(u.region !== undefined ? { region: u.region } : {}),
      ...(u.membership?.level !== undefined ? { membershipLevel: u.membership.level } : {})
    },
    parallelLimit: json.parallel?.limit,
    boosterWallet: json.boosterWallet
  }
}

const decodeJson = Schema.decodeUnknownResult(UsagesJson)

/**
 * Decodes a parsed `/usages` body. Fails (with a short reason, never the body)
 * only when it is not a JSON object.
 */
export const decodeUsage = (body: unknown): Result.Result<KimiUsage, string> =>
  Result.match(decodeJson(body), {
    onSuccess: (json) => Result.succeed(fromJson(json)),
    onFailure: () => Result.fail("the /usages answer is not a JSON object")
  })

// ---------------------------------------------------------------------------
// Reading the windows

/** True when the window has nothing left (its counts say so, or a `used_ratio` of 1). */
export const isExhausted = (w: QuotaWindow): boolean =>
  w.remaining !== undefined
    ? w.remaining <= 0
    : w.limit !== undefined && w.used !== undefined
    ? w.used >= w.limit
    : w.usedRatio !== undefined && w.usedRatio >= 1

/** The share used, between 0 and 1: `used / limit`, else the new shape's `used_ratio`; `undefined` without either. */
export const usedFraction = (w: QuotaWindow): number | undefined =>
  w.limit === undefined || w.used === undefined || w.limit <= 0
    ? w.usedRatio
    : Math.min(1, Math.max(0, w.used / w.limit))

/**
 * The window that blocks: among the exhausted ones, the one that resets last
 * (waiting for an earlier reset would not help). `undefined` when none is
 * exhausted.
 */
export const blockingWindow = (usage: KimiUsage): QuotaWindow | undefined => {
  let found: QuotaWindow | undefined
  for (const w of usage.windows) {
    if (!isExhausted(w)) continue
    if (found === undefined || (w.resetsAt?.getTime() ?? 0) > (found.resetsAt?.getTime() ?? 0)) found = w
  }
  return found
}

/** A duration in words: `2 h 05 min`, `4 min 10 s`, `12 s`; `now` at or below zero. */
export const countdown = (millis: number): string => {
  if (!(millis > 0)) return "now"
  const s = Math.ceil(millis / 1000)
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const pad = (n: number) => String(n).padStart(2, "0")
  if (d > 0) return `${d} d ${h} h`
  if (h > 0) return `${h} h ${pad(m)} min`
  if (m > 0) return `${m} min ${pad(s % 60)} s`
  return `${s} s`
}

/** The machine's offset from UTC at `date`, as people read it: `UTC`, `UTC+1`, `UTC-8`, `UTC+5:30`. */
export const utcOffset = (date: Date): string => {
  const minutes = -date.getTimezoneOffset()
  if (minutes === 0 || !Number.isFinite(minutes)) return "UTC"
  const abs = Math.abs(minutes)
  const mm = abs % 60
  return `UTC${minutes < 0 ? "-" : "+"}${Math.floor(abs / 60)}${mm === 0 ? "" : `:${String(mm).padStart(2, "0")}`}`
}

/**
 * A local date-time for people, with its zone so a reader elsewhere (a log, a
 * chat, a server in UTC) is not misled: `2026-11-30 17:05 UTC+1` in the
 * machine's time zone.
 */
export const localTime = (date: Date): string => {
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${
    pad(date.getMinutes())
  } ${utcOffset(date)}`
}

/** `weekly window: 100 of 100 used`, or `5-hour window: 100% used` from a ratio (parts that are unknown are left out). */
export const describeWindow = (w: QuotaWindow): string =>
  w.used !== undefined && w.limit !== undefined
    ? `${w.label} window: ${w.used} of ${w.limit} used`
    : w.usedRatio !== undefined
    ? `${w.label} window: ${Math.round(w.usedRatio * 100)}% used`
    : `${w.label} window`

/** An amount of cents as money: `$12.50` for USD, else `12.50 EUR` (`12.50` without a currency). */
export const money = (cents: number, currency: string | undefined): string => {
  const amount = (cents / 100).toFixed(2)
  if (currency === undefined || currency.toUpperCase() === "USD") return currency === undefined ? amount : `$${amount}`
  return `${amount} ${currency}`
}

/** `resets at 2026-11-30 17:05 (in 2 h 05 min)`, or `""` without a reset time. */
export const describeReset = (w: QuotaWindow, nowMillis: number): string =>
  w.resetsAt === undefined ? "" : `resets at ${localTime(w.resetsAt)} (in ${countdown(w.resetsAt.getTime() - nowMillis)})`
