/**
 * RFC 8628 device authorization flow: ask for a code, then poll the token
 * endpoint until the user approves, refuses, or the code expires.
 *
 * What it does that Kimi's own clients do not (kimi-protocol.md):
 * - the first poll waits one interval (section 3.4: the client polls *after* showing the code);
 * - `slow_down` adds 5 s to this and every later poll (section 3.5);
 * - a small margin on every wait absorbs clock drift, so the server never sees an early poll;
 * - a 5xx, 429 or network fault while polling is retried with exponential
 *   backoff (section 3.5 recommends doubling after a timeout) inside the
 *   code's lifetime, instead of killing a login the user already approved;
 * - the local deadline from `expires_in` ends the flow even if the server never says `expired_token`;
 * - everything waits with `Effect.sleep`, so an interrupt stops polling at once and the TestClock drives the tests.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  type AccessDeniedError,
  advised,
  answerMayBeLost,
  DeviceCodeExpiredError,
  type InvalidResponseError,
  isTransient,
  type NetworkError,
  OAuthError,
  type ServerError
} from "../Errors.js"
import { CODE_EXPIRED, type DeviceAuthorization, OAuthClient, type OAuthCallError } from "./OAuthClient.js"
import { retryTransient, type RetryNotice } from "./Retry.js"
import type { TokenSet } from "../tokens/TokenSet.js"

/** RFC 8628 section 3.5: seconds added to the interval on every `slow_down`. */
export const SLOW_DOWN_INCREMENT_SECONDS = 5

/** Tuning of the polling loop. */
export interface DeviceFlowOptions {
  /** Added to every wait so clock drift never makes a poll early. Default 250 ms. */
  readonly pollMargin?: Duration.Input | undefined
  /** Longest wait between polls after repeated transient faults. Default 60 s. */
  readonly maxBackoff?: Duration.Input | undefined
}

/** Every way polling can end without tokens. */
export type DeviceFlowError =
  | AccessDeniedError
  | DeviceCodeExpiredError
  | NetworkError
  | ServerError
  | InvalidResponseError
  | OAuthError

/** Something the polling loop observed; for progress display and debug logs. */
export type PollEvent =
  | { readonly _tag: "Pending"; readonly attempt: number }
  | { readonly _tag: "SlowDown"; readonly attempt: number; readonly intervalSeconds: number }
  | { readonly _tag: "Retrying"; readonly attempt: number; readonly error: NetworkError | ServerError; readonly delayMillis: number }

/** The device flow service. */
export interface DeviceFlowShape {
  /** RFC 8628 3.1: asks the server for a device code and a user code; 5xx, 429 and network faults are retried (5 attempts, about 15 s of backoff). */
  readonly start: Effect.Effect<DeviceAuthorization, OAuthCallError>
  /** {@link start}, telling `onRetry` of each retry before its wait (for an edge that shows progress). */
  readonly startWith?: ((onRetry: (retry: RetryNotice) => Effect.Effect<void>) => Effect.Effect<DeviceAuthorization, OAuthCallError>) | undefined
  /**
   * RFC 8628 3.4-3.5: polls until the user approves (tokens), refuses
   * ({@link AccessDeniedError}) or the code expires ({@link DeviceCodeExpiredError}).
   * `onEvent` sees every pending answer, slow_down and retried fault.
   */
  readonly awaitTokens: (
    authorization: DeviceAuthorization,
    onEvent?: (event: PollEvent) => Effect.Effect<void>
  ) => Effect.Effect<TokenSet, DeviceFlowError>
}

const expired = () => new DeviceCodeExpiredError(advised(CODE_EXPIRED, { _tag: "LogIn" }))

/**
 * The refusal that follows a poll left unanswered (its deadline passed, or
 * the connection broke once it was sent), told as what most likely happened:
 * that poll carried the approval's tokens, and Kimi, having handed them out,
 * now refuses the spent device code (`expired_token`, `invalid_grant`). Said
 * "the code expired before it was approved", it sent the user back to the
 * browser puzzled. Other errors pass unchanged.
 */
export const afterUnansweredPoll = (error: DeviceFlowError): DeviceFlowError => {
  if (error._tag !== "DeviceCodeExpiredError" && !(error._tag === "OAuthError" && error.error === "invalid_grant")) return error
  const advice = advised(
    "A poll of the login got no answer within the request deadline, and Kimi then refused the code " +
      "as used: the login was most likely approved, and its answer lost to the slow network. Nothing was saved. " +
      "On a slow network, raise the request timeout (requestTimeout).",
    { _tag: "LogIn" }
  )
  return error._tag === "DeviceCodeExpiredError" ? new DeviceCodeExpiredError(advice) : new OAuthError({ ...error, ...advice })
}

/** Builds the device flow over the {@link OAuthClient}. */
export const make = (options: DeviceFlowOptions = {}) =>
  Effect.gen(function*() {
    const client = yield* OAuthClient
    const marginMillis = Duration.toMillis(Duration.fromInputUnsafe(options.pollMargin ?? "250 millis"))
    const maxBackoffMillis = Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? "60 seconds"))

    const awaitTokens = (
      authorization: DeviceAuthorization,
      onEvent: (event: PollEvent) => Effect.Effect<void> = () => Effect.void
    ): Effect.Effect<TokenSet, DeviceFlowError> =>
      Effect.gen(function*() {
        const startedAt = yield* Clock.currentTimeMillis
        const deadline = startedAt + authorization.expiresIn * 1000
        let intervalMillis = Math.max(1, authorization.interval) * 1000
        let faults = 0
        let delayMillis = intervalMillis
        let lostAnswer = false
        for (let attempt = 1;; attempt++) {
          const now = yield* Clock.currentTimeMillis
          const wait = delayMillis + marginMillis
          if (now + wait >= deadline) {
            // The next poll would come after the code is dead: wait out the code, then say so.
            yield* Effect.sleep(Duration.millis(Math.max(0, deadline - now)))
            return yield* expired()
          }
          yield* Effect.sleep(Duration.millis(wait))
          const outcome = yield* client.pollDeviceToken(authorization.deviceCode).pipe(
            Effect.mapError((e) => (lostAnswer ? afterUnansweredPoll(e) : e)),
            Effect.map((o) => ({ ok: true as const, o })),
            Effect.catchIf(isTransient, (error) => Effect.succeed({ ok: false as const, error }))
          )
          if (!outcome.ok) {
            if (answerMayBeLost(outcome.error)) lostAnswer = true
            faults++
            const backoff = Math.min(intervalMillis * 2 ** faults, maxBackoffMillis)
            delayMillis = Math.max(backoff, outcome.error._tag === "ServerError" ? outcome.error.retryAfterMillis ?? 0 : 0)
            yield* Effect.logDebug("device flow: transient fault while polling, backing off").pipe(
              Effect.annotateLogs({ error: outcome.error._tag, delayMillis })
            )
            yield* onEvent({ _tag: "Retrying", attempt, error: outcome.error, delayMillis })
            continue
          }
          faults = 0
          // Still pending after the lost answer: that one was not the approval.
          if (outcome.o._tag !== "Authorized") lostAnswer = false
          switch (outcome.o._tag) {
            case "Authorized":
              return outcome.o.tokens
            case "Pending":
              yield* onEvent({ _tag: "Pending", attempt })
              break
            case "SlowDown":
              intervalMillis += SLOW_DOWN_INCREMENT_SECONDS * 1000
              yield* Effect.logDebug("device flow: slow_down, interval raised").pipe(
                Effect.annotateLogs({ intervalMillis })
              )
              yield* onEvent({ _tag: "SlowDown", attempt, intervalSeconds: intervalMillis / 1000 })
              break
          }
          delayMillis = intervalMillis
        }
      }).pipe(Effect.withSpan("DeviceFlow.awaitTokens"))

    // Nothing is at stake yet, so a flaky first request is retried rather than ending the login.
    const startWith = (onRetry?: (retry: RetryNotice) => Effect.Effect<void>) =>
      retryTransient(client.requestDeviceAuthorization, {
        attempts: 5,
        baseDelay: "1 second",
        maxDelay: "8 seconds",
        label: "device authorization",
        onRetry
      }).pipe(Effect.withSpan("DeviceFlow.start"))
    const start = startWith()

    return { start, startWith, awaitTokens } satisfies DeviceFlowShape
  })

/** The device flow service. */
export class DeviceFlow extends Context.Service<DeviceFlow, DeviceFlowShape>()("opencode-kimi-auth/DeviceFlow") {
  /** Default tuning. */
  static readonly layer: Layer.Layer<DeviceFlow, never, OAuthClient> = Layer.effect(DeviceFlow, make())
  /** Custom tuning. */
  static readonly layerWith = (options: DeviceFlowOptions): Layer.Layer<DeviceFlow, never, OAuthClient> =>
    Layer.effect(DeviceFlow, make(options))
}
