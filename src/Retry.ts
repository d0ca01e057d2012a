/**
 * Retrying the transient faults (429, 5xx, network, timeouts) of one OAuth
 * call: jittered exponential backoff, bounded in attempts, honouring a
 * server's `Retry-After`. Every other error fails at once. Waits with
 * `Effect.sleep`, so the TestClock drives it and an interrupt stops it.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import { isTransient } from "./Errors.js"

/** The retry policy. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number
  /** Delay before the second attempt; doubles per attempt. */
  readonly baseDelay: Duration.Input
  /** Longest delay between attempts (a `Retry-After` may ask for more, up to an hour). */
  readonly maxDelay: Duration.Input
  /** Shown in the debug log line of each retry. */
  readonly label: string
}

/** Runs `effect`, retrying transient failures per `policy`; the last failure is returned as is. */
export const retryTransient = <A, E extends { readonly _tag: string }, R>(
  effect: Effect.Effect<A, E, R>,
  policy: RetryPolicy
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const base = Duration.toMillis(Duration.fromInputUnsafe(policy.baseDelay))
    const max = Duration.toMillis(Duration.fromInputUnsafe(policy.maxDelay))
    for (let attempt = 1;; attempt++) {
      const result = yield* Effect.result(effect)
      if (result._tag === "Success") return result.success
      const error = result.failure
      if (!isTransient(error) || attempt >= Math.max(1, policy.attempts)) return yield* Effect.fail(error)
      const jitter = 0.8 + (yield* Random.next) * 0.4
      const backoff = Math.min(base * 2 ** (attempt - 1), max) * jitter
      const retryAfter = error._tag === "ServerError" ? error.retryAfterMillis ?? 0 : 0
      const delay = Math.max(backoff, retryAfter)
      yield* Effect.logDebug(`${policy.label}: transient fault, retrying`).pipe(
        Effect.annotateLogs({ error: error._tag, attempt, delayMillis: Math.round(delay) })
      )
      yield* Effect.sleep(Duration.millis(delay))
    }
  })
