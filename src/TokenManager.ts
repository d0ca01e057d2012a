/**
 * Keeps an access token valid, for any number of callers in any number of
 * processes, with refresh tokens that rotate on every use.
 *
 * - **Proactive**: a token is refreshed once its remaining lifetime falls
 *   inside the refresh window ({@link refreshThresholdSeconds}), before it
 *   expires, so requests never carry a dying token.
 * - **Single flight in process**: concurrent callers queue on one permit and
 *   re-check after it; a thousand callers cause one refresh.
 * - **Across processes**: the refresh runs inside the token store's file lock
 *   and re-reads the file first; when another process already rotated the
 *   tokens, those are used and no request is made (replaying a spent refresh
 *   token would revoke the whole login).
 * - **Rotation**: the new refresh token is stored; a response without one keeps the old.
 * - **Rejection**: on `invalid_grant`/401 the file is re-read once (a tool that
 *   does not take our lock may have rotated it); only then does it fail with
 *   {@link NotLoggedInError}. Nothing is ever deleted for a failure.
 * - **Transient faults** (429, 5xx, network) are retried with jittered
 *   exponential backoff; while the current access token is still valid it is
 *   served instead of failing.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Semaphore from "effect/Semaphore"
import {
  type CorruptTokenFileError,
  type InvalidGrantError,
  type InvalidResponseError,
  isTransient,
  LOGIN_HINT,
  type LockTimeoutError,
  type NetworkError,
  NotLoggedInError,
  type OAuthError,
  type ServerError,
  type TokenStoreError
} from "./Errors.js"
import { KimiAuthConfig } from "./KimiAuthConfig.js"
import { OAuthClient } from "./OAuthClient.js"
import { retryTransient } from "./Retry.js"
import { TokenStore } from "./TokenStore.js"
import type { TokenSet } from "./TokenSet.js"
import { isDueAt, refreshThresholdSeconds as thresholdFor } from "./TokenValidation.js"

/** Every way getting a token can fail. Transient errors appear only after retries ran out. */
export type TokenError =
  | NotLoggedInError
  | TokenStoreError
  | LockTimeoutError
  | NetworkError
  | ServerError
  | InvalidResponseError
  | OAuthError

/** Tuning of the token manager. */
export interface TokenManagerOptions {
  /** Attempts of one refresh on transient faults (first try included). Default 5. */
  readonly refreshAttempts?: number | undefined
  /** First backoff delay; doubles per attempt, jittered ±20 %. Default 500 ms. */
  readonly retryBaseDelay?: Duration.Input | undefined
  /** Longest backoff delay. Default 8 s. */
  readonly retryMaxDelay?: Duration.Input | undefined
  /** Longest sleep of the background refresher between checks. Default 60 s. */
  readonly backgroundCheckInterval?: Duration.Input | undefined
  /**
   * Run the background refresher's timers unreferenced (Node/Bun), so that it
   * never keeps a process alive by itself. Default true; tests on the
   * TestClock set false.
   */
  readonly unrefTimers?: boolean | undefined
}

/** The token manager service. */
export interface TokenManagerShape {
  /** A valid access token, refreshing first when it is due. */
  readonly getAccessToken: Effect.Effect<Redacted.Redacted<string>, TokenError>
  /** The current valid token set, refreshing first when it is due. */
  readonly getTokens: Effect.Effect<TokenSet, TokenError>
  /**
   * Forces a refresh, for the "API said 401" path: unless the token on disk is
   * already different from `rejected` (someone else refreshed it), in which
   * case that one is used. Without `rejected`, always refreshes.
   */
  readonly invalidate: (rejected?: Redacted.Redacted<string>) => Effect.Effect<TokenSet, TokenError>
  /** Stores tokens from a fresh login (under the lock) and serves them from now on. */
  readonly setTokens: (tokens: TokenSet) => Effect.Effect<void, TokenStoreError | LockTimeoutError>
  /** Forgets the tokens (logout): removes the file under the lock. `false` when there was none. */
  readonly clear: Effect.Effect<boolean, TokenStoreError | LockTimeoutError>
  /**
   * Keeps the token fresh until interrupted: wakes when the token becomes due
   * (at least every check interval, which also catches a machine waking from
   * sleep), refreshes, and logs failures instead of failing. Fork it in a
   * scope, or use {@link TokenManager.layerWithBackgroundRefresh}.
   */
  readonly backgroundRefresh: Effect.Effect<never>
}

/**
 * Seconds of remaining lifetime below which a token is due for refresh: the
 * larger of the window and half the lifetime (Kimi's own rule), but never more
 * than three quarters of the lifetime, so a freshly issued short-lived token is
 * never due at once. (The pure rule is `TokenValidation.refreshThresholdSeconds`.)
 */
export const refreshThresholdSeconds = (tokens: TokenSet, windowSeconds: number): number =>
  thresholdFor(tokens.expiresIn, windowSeconds)

/** Whether `tokens` should be refreshed at `nowSeconds`. */
export const isDue = (tokens: TokenSet, nowSeconds: number, windowSeconds: number): boolean =>
  isDueAt(tokens.expiresAt, tokens.expiresIn, nowSeconds, windowSeconds)

const sameSecret = (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => Redacted.value(a) === Redacted.value(b)

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => ms / 1000)

const unrefSleep = (duration: Duration.Duration): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), Duration.toMillis(duration))
    ;(timer as { unref?: () => void }).unref?.()
    return Effect.sync(() => clearTimeout(timer))
  })

const notLoggedIn = (reason: NotLoggedInError["reason"], detail: string) =>
  new NotLoggedInError({ reason, message: `${detail}; ${LOGIN_HINT}.` })

/** Builds the token manager. */
export const make = (options: TokenManagerOptions = {}) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const store = yield* TokenStore
    const oauth = yield* OAuthClient
    const windowSeconds = Duration.toSeconds(settings.refreshWindow)
    const attempts = Math.max(1, options.refreshAttempts ?? 5)
    const checkInterval = Duration.toMillis(Duration.fromInputUnsafe(options.backgroundCheckInterval ?? "60 seconds"))
    const sleep = options.unrefTimers === false ? Effect.sleep : unrefSleep
    const permit = yield* Semaphore.make(1)
    let cached: TokenSet | undefined

    const load: Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> = store.load.pipe(
      Effect.catchTag("CorruptTokenFileError", (e: CorruptTokenFileError) =>
        Effect.fail(new NotLoggedInError({ reason: "corrupt-file", message: e.message }))),
      Effect.flatMap((t) =>
        t === undefined
          ? Effect.fail(notLoggedIn("no-tokens", `You are not logged in to Kimi (no tokens at ${store.path})`))
          : Effect.succeed(t)
      )
    )

    /** One refresh request, retried on transient faults with jittered exponential backoff. */
    const refreshWithRetry = (tokens: TokenSet) =>
      retryTransient(oauth.refreshToken(tokens.refreshToken, tokens), {
        attempts,
        baseDelay: options.retryBaseDelay ?? "500 millis",
        maxDelay: options.retryMaxDelay ?? "8 seconds",
        label: "token refresh"
      })

    const persist = (tokens: TokenSet) =>
      store.save(tokens).pipe(
        Effect.retry({ times: 1 }),
        Effect.catch((error) =>
          // The server already rotated: the new tokens must not be lost even if the disk is failing.
          Effect.logError("token refresh: the new tokens could not be written; serving them from memory").pipe(
            Effect.annotateLogs({ error: error.message })
          )
        )
      )

    /** The locked part: re-read, decide, refresh, store. */
    const refreshLocked = (rejected: Redacted.Redacted<string> | undefined, force: boolean) =>
      store.withLock(
        Effect.gen(function*() {
          const onDisk = yield* load
          const now = yield* nowSeconds
          const replacedElsewhere = rejected !== undefined && !sameSecret(onDisk.accessToken, rejected)
          if (force ? replacedElsewhere && onDisk.remainingSeconds(now) > 0 : !isDue(onDisk, now, windowSeconds)) {
            yield* Effect.logDebug("token refresh: another process already refreshed; using the tokens on disk")
            return onDisk
          }
          yield* Effect.logDebug(
            force ? "token refresh: forced (the API rejected the access token)" : "token refresh: due, refreshing"
          ).pipe(Effect.annotateLogs({ remainingSeconds: Math.round(onDisk.remainingSeconds(now)) }))
          const refreshed = yield* refreshWithRetry(onDisk).pipe(
            Effect.catchTag("InvalidGrantError", (e: InvalidGrantError) =>
              // Re-read once: a tool that does not use our lock may have rotated the tokens.
              load.pipe(
                Effect.flatMap((again) =>
                  sameSecret(again.refreshToken, onDisk.refreshToken)
                    ? Effect.fail(notLoggedIn("refresh-rejected", `Your Kimi login has expired or was revoked (${e.status})`))
                    : again.remainingSeconds(now) > 0
                    ? Effect.succeed(again)
                    : refreshWithRetry(again).pipe(
                      Effect.catchTag("InvalidGrantError", () =>
                        Effect.fail(notLoggedIn("refresh-rejected", "Your Kimi login has expired or was revoked")))
                    )
                )
              )),
            Effect.catchIf(isTransient, (error) =>
              // Proactive refresh failed for now: the current token still works, serve it.
              !force && onDisk.remainingSeconds(now) > 5
                ? Effect.logWarning("token refresh failed for now; the current token is still valid").pipe(
                  Effect.annotateLogs({ error: error._tag }),
                  Effect.as(onDisk)
                )
                : Effect.fail(error))
          )
          if (refreshed !== onDisk) {
            yield* persist(refreshed)
            yield* Effect.logDebug(
              sameSecret(refreshed.refreshToken, onDisk.refreshToken)
                ? "token refresh: done; the server sent no new refresh token, the stored one is kept"
                : "token refresh: done; the refresh token was rotated and stored"
            ).pipe(Effect.annotateLogs({ expiresAt: refreshed.expiresAt }))
          }
          return refreshed
        })
      )

    const serve = (rejected: Redacted.Redacted<string> | undefined, force: boolean): Effect.Effect<TokenSet, TokenError> =>
      permit.withPermit(
        Effect.gen(function*() {
          const now = yield* nowSeconds
          // Double-checked: a caller ahead of us in the queue may have refreshed already.
          if (cached !== undefined) {
            const replaced = rejected !== undefined && !sameSecret(cached.accessToken, rejected)
            if (force ? replaced : !isDue(cached, now, windowSeconds)) return cached
          }
          if (!force && cached === undefined) {
            const loaded = yield* load
            if (!isDue(loaded, now, windowSeconds)) {
              cached = loaded
              return loaded
            }
          }
          const fresh = yield* refreshLocked(rejected, force)
          cached = fresh
          return fresh
        })
      )

    const getTokens: Effect.Effect<TokenSet, TokenError> = Effect.suspend(() =>
      Effect.flatMap(nowSeconds, (now) =>
        cached !== undefined && !isDue(cached, now, windowSeconds) ? Effect.succeed(cached) : serve(undefined, false))
    ).pipe(Effect.withSpan("TokenManager.getTokens"))

    const invalidate = (rejected?: Redacted.Redacted<string>) =>
      serve(rejected, true).pipe(Effect.withSpan("TokenManager.invalidate"))

    const setTokens = (tokens: TokenSet) =>
      permit.withPermit(
        store.withLock(store.save(tokens)).pipe(Effect.tap(() => Effect.sync(() => (cached = tokens))))
      )

    const clear = permit.withPermit(
      store.withLock(store.clear).pipe(Effect.tap(() => Effect.sync(() => (cached = undefined))))
    )

    const backgroundRefresh: Effect.Effect<never> = Effect.gen(function*() {
      let lastWake = yield* Clock.currentTimeMillis
      let expectedSleep = 0
      while (true) {
        const now = yield* Clock.currentTimeMillis
        if (now - lastWake > expectedSleep + checkInterval) {
          yield* Effect.logDebug("background refresh: the clock jumped (sleep and wake?); checking the token now")
        }
        const tokens = yield* getTokens.pipe(
          Effect.map((t): TokenSet | undefined => t),
          Effect.catch((error) =>
            (error._tag === "NotLoggedInError"
              ? Effect.logDebug("background refresh: not logged in")
              : Effect.logWarning("background refresh failed; will try again").pipe(
                Effect.annotateLogs({ error: error._tag })
              )).pipe(Effect.as(undefined))
          )
        )
        const after = yield* Clock.currentTimeMillis
        const untilDue = tokens === undefined
          ? checkInterval
          : (tokens.expiresAt - refreshThresholdSeconds(tokens, windowSeconds)) * 1000 - after
        expectedSleep = Math.min(Math.max(untilDue, 1000), checkInterval)
        lastWake = after
        yield* sleep(Duration.millis(expectedSleep))
      }
    }).pipe(Effect.withSpan("TokenManager.backgroundRefresh"))

    return {
      getAccessToken: Effect.map(getTokens, (t) => t.accessToken),
      getTokens,
      invalidate,
      setTokens,
      clear,
      backgroundRefresh
    } satisfies TokenManagerShape
  })

/** The token manager service. */
export class TokenManager extends Context.Service<TokenManager, TokenManagerShape>()(
  "opencode-kimi-auth/TokenManager"
) {
  /** On demand only: refreshes when a caller asks for a token that is due. */
  static readonly layer = (
    options: TokenManagerOptions = {}
  ): Layer.Layer<TokenManager, never, KimiAuthConfig | TokenStore | OAuthClient> => Layer.effect(TokenManager, make(options))

  /**
   * Also runs {@link TokenManagerShape.backgroundRefresh} for as long as the
   * layer's scope is open, for long-lived processes.
   */
  static readonly layerWithBackgroundRefresh = (
    options: TokenManagerOptions = {}
  ): Layer.Layer<TokenManager, never, KimiAuthConfig | TokenStore | OAuthClient> =>
    Layer.effect(
      TokenManager,
      Effect.tap(make(options), (manager) => Effect.forkScoped(manager.backgroundRefresh))
    )
}
