/**
 * Retrying the transient faults (429, 5xx, network, timeouts) of one OAuth
 * call: jittered exponential backoff, bounded in attempts and, when a budget
 * is given, in total time, honouring a server's `Retry-After`. Every other
 * error fails at once. Waits with `Effect.sleep`, so the TestClock drives it
 * and an interrupt stops it.
 *
 * A `Retry-After` longer than the budget is not waited for: the call fails at
 * once with a {@link ServerError} whose message names the delay.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { isTransient, ServerError, type TransientError } from "../Errors.js"

/** The retry policy. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number
  /** Delay before the second attempt; doubles per attempt. */
  readonly baseDelay: Duration.Input
  /** Longest delay between attempts (a `Retry-After` may ask for more, up to the budget). */
  readonly maxDelay: Duration.Input
  /**
   * Longest total time spent on the call, its waits included. A wait that
   * would end past it is not started: the last error is returned. Unset: only
   * `attempts` bounds the call.
   */
  readonly budget?: Duration.Input | undefined
  /** Shown in the debug log line of each retry. */
  readonly label: string
  /** Told of each retry before its wait, for an edge that shows progress. */
  readonly onRetry?: ((retry: RetryNotice) => Effect.Effect<void>) | undefined
}

/** One retry about to wait: the attempt that failed (1 = the first), of how many, why, and the wait. */
export interface RetryNotice {
  readonly attempt: number
  readonly attempts: number
  readonly error: TransientError
  readonly delayMillis: number
}

/**
 * The wait a transient error asks for, in millis (0 when none): a
 * `ServerError`'s `Retry-After` hint, already parsed. (Parsing the header
 * itself is `Authorize.retryAfterMillis`.)
 */
export const askedWaitMillis = (error: { readonly _tag: string }): number =>
  error._tag === "ServerError" ? Math.max(0, (error as ServerError).retryAfterMillis ?? 0) : 0

/**
 * The wait before attempt `attempt + 1` after `error`: the jittered (±20 %)
 * exponential backoff, or the server's `Retry-After` when that is longer.
 */
export const backoffDelay = (
  error: { readonly _tag: string },
  attempt: number,
  policy: Pick<RetryPolicy, "baseDelay" | "maxDelay">
): Effect.Effect<number> =>
  Effect.map(Random.next, (r) => {
    const base = Duration.toMillis(Duration.fromInputUnsafe(policy.baseDelay))
    const max = Duration.toMillis(Duration.fromInputUnsafe(policy.maxDelay))
    const backoff = Math.min(base * 2 ** (Math.max(1, attempt) - 1), max) * (0.8 + r * 0.4)
    return Math.round(Math.max(backoff, askedWaitMillis(error)))
  })

const seconds = (millis: number) => `${Math.round(millis / 1000)} s`

/**
 * The error for a `Retry-After` longer than the client's budget: the same
 * {@link ServerError}, with a message that names the delay and what to do.
 */
export const retryAfterTooLong = (error: ServerError, budgetMillis: number): ServerError =>
  new ServerError({
    url: error.url,
    status: error.status,
    excerpt: error.excerpt,
    retryAfterMillis: error.retryAfterMillis,
    message: `Kimi asked to wait ${seconds(askedWaitMillis(error))} before trying again (HTTP ${error.status} ` +
      `with Retry-After), longer than the ${seconds(budgetMillis)} this client waits. Nothing was changed; ` +
      `try again after that delay.`
  })

/** True for a transient error whose `Retry-After` is longer than `budgetMillis`. */
export const isRetryAfterTooLong = (error: { readonly _tag: string }, budgetMillis: number): error is ServerError =>
  error._tag === "ServerError" && askedWaitMillis(error) > budgetMillis

/** Runs `effect`, retrying transient failures per `policy`; the last failure is returned as is. */
export const retryTransient = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>,
  policy: RetryPolicy
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const budget = policy.budget === undefined ? Infinity : Duration.toMillis(Duration.fromInputUnsafe(policy.budget))
    const start = yield* Clock.currentTimeMillis
    for (let attempt = 1;; attempt++) {
      const result = yield* Effect.result(effect)
      if (result._tag === "Success") return result.success
      const error = result.failure
      if (!isTransient(error) || attempt >= Math.max(1, policy.attempts)) return yield* Effect.fail(error)
      if (isRetryAfterTooLong(error, budget)) return yield* Effect.fail(retryAfterTooLong(error, budget) as unknown as E)
      const delay = yield* backoffDelay(error, attempt, policy)
      const elapsed = (yield* Clock.currentTimeMillis) - start
      if (elapsed + delay > budget) return yield* Effect.fail(error)
      yield* Effect.logDebug(`${policy.label}: transient fault, retrying`).pipe(
        Effect.annotateLogs({ error: (error as TransientError)._tag, attempt, delayMillis: delay })
      )
      if (policy.onRetry) {
        yield* policy.onRetry({ attempt, attempts: policy.attempts, error: error as TransientError, delayMillis: delay })
      }
      yield* Effect.sleep(Duration.millis(delay))
    }
  })
