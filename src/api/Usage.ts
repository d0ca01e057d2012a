/**
 * The plan's quota as Kimi serves it at `GET {API base}/usages`, decoded
 * leniently, and the small pure helpers every edge shows it with.
 *
 * Kimi's answer (as Moonshot's own clients read it; numbers arrive as strings):
 * `usage` is the weekly window `{limit, used, remaining, resetTime}`;
 * `limits[]` are rolling windows `{window: {duration, timeUnit}, detail: {…}}`
 * (`300` × `TIME_UNIT_MINUTE` is the 5-hour window); `user`, `parallel` and
 * `boosterWallet` are optional. Fields come and go, so every field is
 * optional, a field of the wrong type is dropped instead of failing the whole
 * answer, and unknown fields are ignored. Only a body that is not a JSON
 * object at all fails.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import type { KimiUsage, QuotaWindow } from "./UsageModel.js"

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

/** The whole `/usages` answer, as sent (only the fields this package reads). */
export const UsagesJson = Schema.Struct({
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
export type { KimiUsage, QuotaWindow } from "./UsageModel.js"

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

/** The model from the decoded wire shape: a `limits[]` entry that is not an object is skipped. */
export const fromJson = (json: UsagesJson): KimiUsage => {
  const windows: Array<QuotaWindow> = []
  if (json.usage !== undefined) windows.push(windowOf(json.usage, "plan", undefined))
  for (const raw of json.limits ?? []) {
    const entry = decodeLimit(raw)
    if (entry._tag === "None" || entry.value.detail === undefined) continue
    const w = entry.value.window
    windows.push(windowOf(entry.value.detail, "rolling", windowMinutes(w?.duration, w?.timeUnit)))
  }
  const u = json.user
  return {
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

/** True when the window has nothing left. */
export const isExhausted = (w: QuotaWindow): boolean =>
  w.remaining !== undefined ? w.remaining <= 0 : w.limit !== undefined && w.used !== undefined && w.used >= w.limit

/** `used / limit` between 0 and 1; `undefined` without both numbers. */
export const usedFraction = (w: QuotaWindow): number | undefined =>
  w.limit === undefined || w.used === undefined || w.limit <= 0 ? undefined : Math.min(1, Math.max(0, w.used / w.limit))

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

/** `weekly window: 100 of 100 used` (parts that are unknown are left out). */
export const describeWindow = (w: QuotaWindow): string =>
  w.used !== undefined && w.limit !== undefined
    ? `${w.label} window: ${w.used} of ${w.limit} used`
    : `${w.label} window`

/** `resets at 2026-11-30 17:05 (in 2 h 05 min)`, or `""` without a reset time. */
export const describeReset = (w: QuotaWindow, nowMillis: number): string =>
  w.resetsAt === undefined ? "" : `resets at ${localTime(w.resetsAt)} (in ${countdown(w.resetsAt.getTime() - nowMillis)})`
