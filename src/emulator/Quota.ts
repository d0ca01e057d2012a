/**
 * The plan's quota in the Kimi emulator: a 5-hour, a weekly and two monthly
 * windows (total and code), each counting successful chat completions against
 * a small limit, served at `GET /coding/v1/usages` in either of Kimi's
 * shapes, and Kimi's refusals once a window is used up.
 *
 * The new plans' shape (the default, as kimi-code 2.1.0 reads it):
 * `usages.{limit_5h, limit_7d, limit_month_total, limit_month_code}`, each
 * `{used_ratio, reset_time}`, plus a `boosterWallet` with fixed-point amounts
 * (1,000,000 per cent). The old shape (`usages: "old"`; numbers as strings):
 * `usage` is the weekly window, `limits[]` the rolling windows (`duration:
 * 300, timeUnit: "TIME_UNIT_MINUTE"` is the 5-hour one), plus `user` and
 * `parallel`; it has no monthly windows. A window starts with its first
 * counted request and resets `duration` later (a "month" is 30 days here); an
 * unstarted window reports the reset a window started now would have. Time
 * is the emulator's `now()` (Effect's Clock).
 *
 * Refusals, as Kimi answers them: `403` "You've reached your usage limit for
 * this billing cycle…" (type `permission_error`), or `429`
 * `exceeded_current_quota_error`; and, independent of the quota, a plain rate
 * limit `429 rate_limit_reached_error` with `Retry-After`.
 *
 * @since 0.1.0
 */

/** The windows of a Kimi For Coding plan. */
export type QuotaWindow = "fiveHour" | "weekly" | "monthlyTotal" | "monthlyCode"

/** Which `/usages` shape the emulator answers: the new plans' (default) or the old one. */
export type UsagesShape = "new" | "old"

/** Quota settings; every field is optional. */
export interface QuotaOptions {
  /** Chat completions allowed per rolling 5-hour window. Default 100. */
  readonly fiveHourLimit?: number | undefined
  /** Chat completions allowed per weekly window. Default 1000. */
  readonly weeklyLimit?: number | undefined
  /** Chat completions allowed per monthly window (total, and code: every chat counts in both). Default 4000. */
  readonly monthlyLimit?: number | undefined
  /** The `/usages` shape answered: `"new"` (the new plans', default) or `"old"` (`usage` + `limits[]`). */
  readonly usages?: UsagesShape | undefined
  /** How a used-up quota is refused: `403` (the billing-cycle message, the default) or `429` (`exceeded_current_quota_error`). */
  readonly refusal?: 403 | 429 | undefined
  /** When true, every chat completion is answered `429 rate_limit_reached_error` (a rate limit, not the quota). Default false. */
  readonly rateLimited?: boolean | undefined
  /** `Retry-After` of the rate-limit answer, in seconds. Default 1. */
  readonly retryAfterSeconds?: number | undefined
}

/** One window as tests see it. */
export interface QuotaWindowInfo {
  readonly limit: number
  readonly used: number
  readonly remaining: number
  /** Epoch ms of the next reset (emulator clock). */
  readonly resetAt: number
}

/** Every window. */
export interface QuotaSnapshot {
  readonly fiveHour: QuotaWindowInfo
  readonly weekly: QuotaWindowInfo
  readonly monthlyTotal: QuotaWindowInfo
  readonly monthlyCode: QuotaWindowInfo
}

/** A refusal: status, `error.type`, message, extra headers. */
export interface QuotaRefusal {
  readonly status: number
  readonly type: string
  readonly message: string
  readonly headers: Readonly<Record<string, string>>
}

/** Default limits: small enough to run out of in a demo, large enough for any test that does not mean to. */
export const DEFAULT_FIVE_HOUR_LIMIT = 100
export const DEFAULT_WEEKLY_LIMIT = 1000
export const DEFAULT_MONTHLY_LIMIT = 4000

const FIVE_HOURS = 5 * 3600_000
const WEEK = 7 * 24 * 3600_000
const MONTH = 30 * 24 * 3600_000

/** The booster wallet the emulator reports in the new shape: $20.00 bought, $12.50 left, $17.50 of a $20.00 cap charged. */
export const BOOSTER_WALLET = {
  balance: { type: "BOOSTER", amount: "2000000000", amountLeft: "1250000000" },
  monthlyChargeLimitEnabled: true,
  monthlyChargeLimit: { priceInCents: 2000, currency: "USD" },
  monthlyUsed: { priceInCents: 1750, currency: "USD" }
} as const

/** Kimi's message for a used-up plan (kimi-code issues 2121 and 3014). */
export const USAGE_LIMIT_MESSAGE = "You've reached your usage limit for this billing cycle. Your quota will be refreshed " +
  "in the next cycle. To continue now, purchase extra usage or upgrade your plan: https://www.kimi.com/code/#pricing"

/** Moonshot's message for `exceeded_current_quota_error`. */
export const EXCEEDED_QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."

/** Moonshot's message for `rate_limit_reached_error` (kimi-cli issue 901). */
export const RATE_LIMIT_MESSAGE = "We're receiving too many requests at the moment. Please wait a moment and try again."

const limitOf = (n: number | undefined, fallback: number) =>
  n === undefined || !Number.isFinite(n) ? fallback : Math.max(0, Math.floor(n))

class Window {
  startedAt: number | undefined = undefined
  used = 0
  constructor(public limit: number, readonly durationMillis: number) {}

  /** Ends the window once its time is up. */
  roll(now: number): void {
    if (this.startedAt !== undefined && now >= this.startedAt + this.durationMillis) {
      this.startedAt = undefined
      this.used = 0
    }
  }

  start(now: number): void {
    this.roll(now)
    this.startedAt ??= now
  }

  info(now: number): QuotaWindowInfo {
    this.roll(now)
    return {
      limit: this.limit,
      used: this.used,
      remaining: Math.max(0, this.limit - this.used),
      resetAt: (this.startedAt ?? now) + this.durationMillis
    }
  }
}

const iso = (millis: number) => new Date(millis).toISOString()

const detail = (w: QuotaWindowInfo) => ({
  limit: String(w.limit),
  used: String(w.used),
  remaining: String(w.remaining),
  resetTime: iso(w.resetAt)
})

/** A window of the new shape: the share used (4 decimals; a limit of 0 is used up) and the reset. */
const ratio = (w: QuotaWindowInfo) => ({
  used_ratio: w.limit <= 0 ? 1 : Math.round(Math.min(1, w.used / w.limit) * 10_000) / 10_000,
  reset_time: iso(w.resetAt)
})

/** The quota state; every method reads the time it is given. */
export class Quota {
  private readonly fiveHour: Window
  private readonly weekly: Window
  private readonly monthlyTotal: Window
  private readonly monthlyCode: Window
  private usages: UsagesShape
  private refusal: 403 | 429
  private rateLimited: boolean
  private retryAfterSeconds: number

  constructor(options: QuotaOptions = {}) {
    this.fiveHour = new Window(limitOf(options.fiveHourLimit, DEFAULT_FIVE_HOUR_LIMIT), FIVE_HOURS)
    this.weekly = new Window(limitOf(options.weeklyLimit, DEFAULT_WEEKLY_LIMIT), WEEK)
    this.monthlyTotal = new Window(limitOf(options.monthlyLimit, DEFAULT_MONTHLY_LIMIT), MONTH)
    this.monthlyCode = new Window(limitOf(options.monthlyLimit, DEFAULT_MONTHLY_LIMIT), MONTH)
    this.usages = options.usages ?? "new"
    this.refusal = options.refusal ?? 403
    this.rateLimited = options.rateLimited ?? false
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1
  }

  /** Changes the given settings; counts already made stay. */
  set(options: QuotaOptions): void {
    if (options.fiveHourLimit !== undefined) this.fiveHour.limit = limitOf(options.fiveHourLimit, this.fiveHour.limit)
    if (options.weeklyLimit !== undefined) this.weekly.limit = limitOf(options.weeklyLimit, this.weekly.limit)
    if (options.monthlyLimit !== undefined) {
      for (const w of [this.monthlyTotal, this.monthlyCode]) w.limit = limitOf(options.monthlyLimit, w.limit)
    }
    if (options.usages !== undefined) this.usages = options.usages
    if (options.refusal !== undefined) this.refusal = options.refusal
    if (options.rateLimited !== undefined) this.rateLimited = options.rateLimited
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds
  }

  /** Every window now. */
  snapshot(now: number): QuotaSnapshot {
    return {
      fiveHour: this.fiveHour.info(now),
      weekly: this.weekly.info(now),
      monthlyTotal: this.monthlyTotal.info(now),
      monthlyCode: this.monthlyCode.info(now)
    }
  }

  /** The `/usages` shape answered now. */
  get usagesShape(): UsagesShape {
    return this.usages
  }

  private get windows(): ReadonlyArray<Window> {
    return [this.fiveHour, this.weekly, this.monthlyTotal, this.monthlyCode]
  }

  /** The refusal a chat completion gets now, or `undefined` when it may go ahead. */
  refusalFor(now: number): QuotaRefusal | undefined {
    if (this.rateLimited) {
      return {
        status: 429,
        type: "rate_limit_reached_error",
        message: RATE_LIMIT_MESSAGE,
        headers: { "retry-after": String(this.retryAfterSeconds) }
      }
    }
    const s = this.snapshot(now)
    if (Object.values(s).every((w) => w.remaining > 0)) return undefined
    return this.refusal === 403
      ? { status: 403, type: "permission_error", message: USAGE_LIMIT_MESSAGE, headers: {} }
      : { status: 429, type: "exceeded_current_quota_error", message: EXCEEDED_QUOTA_MESSAGE, headers: {} }
  }

  /** Counts one answered chat completion in every window. */
  count(now: number): void {
    for (const w of this.windows) {
      w.start(now)
      w.used++
    }
  }

  /** Uses a window up (every one when none is named), as if its last request had just been made. */
  exhaust(now: number, window?: QuotaWindow): void {
    for (const w of window === undefined ? this.windows : [this[window]]) {
      w.start(now)
      w.used = Math.max(w.used, w.limit)
    }
  }

  /** Empties every window. */
  reset(): void {
    for (const w of this.windows) {
      w.startedAt = undefined
      w.used = 0
    }
  }

  /** The body of `GET /coding/v1/usages`, in the shape chosen ({@link QuotaOptions.usages}). */
  usagesBody(now: number, user: { readonly userId: string; readonly region: string }): Record<string, unknown> {
    const s = this.snapshot(now)
    if (this.usages === "new") {
      return {
        usages: {
          limit_5h: ratio(s.fiveHour),
          limit_7d: ratio(s.weekly),
          limit_month_total: ratio(s.monthlyTotal),
          limit_month_code: ratio(s.monthlyCode)
        },
        boosterWallet: BOOSTER_WALLET
      }
    }
    return {
      user: { userId: user.userId, region: user.region, membership: { level: "LEVEL_BASIC" } },
      usage: detail(s.weekly),
      limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: detail(s.fiveHour) }],
      parallel: { limit: "20" },
      totalQuota: {}
    }
  }
}
