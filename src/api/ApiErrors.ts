/**
 * The typed errors of calls to the Kimi API (beside the login errors of
 * `Errors.ts`): the plan's quota is used up, a plain rate limit, and any other
 * answer that is not what was asked for. None carries a token: excerpts are
 * scrubbed by `excerpt`.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import type { KimiUsage, QuotaWindow } from "./Usage.js"

/**
 * Kimi refused because the plan's usage limit is used up (`403` "You've
 * reached your usage limit…", or `exceeded_current_quota_error`). Not an
 * auth failure: nothing was refreshed, and retrying before `resetsAt` is in
 * vain. `window` and `resetsAt` come from `/usages` when it could be read.
 */
export class QuotaExceededError extends Data.TaggedError("QuotaExceededError")<{
  /** The status Kimi answered (403 or 429). */
  readonly status: number
  /** `exceeded_current_quota_error`, or `usage_limit_reached` for the 403 answer. */
  readonly code: string
  /** The used-up window that resets last, when known. */
  readonly window: QuotaWindow | undefined
  /** When the quota is back, when known. */
  readonly resetsAt: Date | undefined
  /** The whole `/usages` answer read at the time, when it could be. */
  readonly usage: KimiUsage | undefined
  readonly message: string
}> {}

/**
 * Kimi answered a plain `429` rate limit (`rate_limit_reached_error`): too
 * many requests right now. Transient; `retryAfterMillis` holds the hint.
 */
export class RateLimitedError extends Data.TaggedError("RateLimitedError")<{
  readonly url: string
  readonly retryAfterMillis: number | undefined
  readonly message: string
}> {}

/**
 * The Kimi API answered something other than what was asked for: an error
 * status, or a body that does not decode. Carries the status and a short,
 * token-free excerpt.
 */
export class KimiApiError extends Data.TaggedError("KimiApiError")<{
  readonly url: string
  readonly status: number
  readonly excerpt: string
  readonly message: string
}> {}
