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
 * - **A token the API rejects** is refreshed once; a fresh one rejected again
 *   within {@link REJECTED_FRESH_TOKEN_SECONDS} of a forced refresh (in any
 *   process) is not ({@link refusesAgain}: the same token is handed back,
 *   which the request core reports as rejected), so an API that refuses every
 *   token cannot make every call, in every process, spend the family.
 * - **Rejection**: on `invalid_grant`/401 the file is re-read once (a tool that
 *   does not take our lock may have rotated it); only then does it fail with
 *   {@link NotLoggedInError}. Nothing is ever deleted for a failure.
 * - **Transient faults** (429, 5xx, network): a proactive refresh (the token
 *   still valid) serves the current token at once and tries again on a later
 *   call after a backoff (or from the background refresher). A refresh that
 *   must succeed (expired token, or `invalidate`) retries with jittered
 *   exponential backoff or the server's `Retry-After`, for at most
 *   `maxRetryTime` (20 s) in all; a `Retry-After` longer than that fails at
 *   once with a message naming the delay. The cross-process lock is released
 *   during every wait and re-taken (and the file re-read) after it.
 * - **Disk first**: before spending a refresh token, the space for the new
 *   token file is written and fsynced ({@link TokenStoreShape.prepareSave}), so
 *   a full disk fails before the request. If the save still fails after the
 *   server answered, the call fails with `TokenStoreError` naming the errno,
 *   and this process keeps the new tokens in memory: its next refresh uses
 *   them, never the spent refresh token still on disk.
 * - **Interrupted refreshes**: the request and its save are one
 *   uninterruptible step: interrupting the caller waits (at most the request
 *   deadline) for the answer to be saved. A marker is written right before the
 *   request and removed by the save. A process killed in between leaves it; when the
 *   next refresh is then rejected, the error says that an interrupted refresh
 *   lost the login and how to log in again.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import {
  answerMayBeLost,
  type CorruptTokenFileError,
  type InvalidGrantError,
  type InvalidResponseError,
  isTransient,
  LOGIN_HINT,
  TokenStoreError,
  type TransientError,
  type LockTimeoutError,
  type NetworkError,
  NotLoggedInError,
  type OAuthError,
  type ServerError
} from "./Errors.js"
import { KimiAuthConfig } from "./KimiAuthConfig.js"
import { isLoggedOut } from "./LogoutMarker.js"
import { noteForcedRefresh, readForcedRefreshAt } from "./ForcedRefreshLog.js"
import { OAuthClient } from "./OAuthClient.js"
import { backoffDelay, isRetryAfterTooLong, retryAfterTooLong } from "./Retry.js"
import { type InterruptedRefresh, type PreparedSave, TokenStore, type TokenStoreShape } from "./TokenStore.js"
import { TokenSet } from "./TokenSet.js"
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
  /**
   * Longest total time one refresh spends on transient faults, its waits
   * included; a `Retry-After` longer than this fails at once. Default 20 s.
   */
  readonly maxRetryTime?: Duration.Input | undefined
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
 * never due at once.
 */
export const refreshThresholdSeconds = (tokens: TokenSet, windowSeconds: number): number =>
  thresholdFor(tokens.expiresIn, windowSeconds)

/** Whether `tokens` should be refreshed at `nowSeconds`. */
export const isDue = (tokens: TokenSet, nowSeconds: number, windowSeconds: number): boolean =>
  isDueAt(tokens.expiresAt, tokens.expiresIn, nowSeconds, windowSeconds)

/** A token served from memory is checked to still be stored (not logged out elsewhere) at most this often. */
export const PRESENCE_CHECK_MILLIS = 2000

/**
 * The window of {@link refusesAgain}: within this many seconds of a refresh
 * forced by an API rejection, a rejected fresh token is not refreshed again.
 * An API that refuses every token (a wrong base URL or region, a suspended
 * plan) would otherwise cost one refresh, one rotation of the family and one
 * request to the token endpoint per API call, in every process. With it, such
 * an API costs at most one forced refresh per minute across all processes,
 * and the caller gets a clear "rejected" outcome.
 */
export const REJECTED_FRESH_TOKEN_SECONDS = 60

/**
 * Whether `tokens` were issued less than `windowSeconds` before `nowSeconds`
 * (their issue time is `expiresAt - expiresIn`, the local clock at receipt).
 * A clock set back (an issue time in the future) counts as not fresh, so a
 * wrong clock never blocks refreshes.
 */
export const issuedMomentsAgo = (tokens: TokenSet, nowSeconds: number, windowSeconds: number = REJECTED_FRESH_TOKEN_SECONDS): boolean => {
  const age = nowSeconds - (tokens.expiresAt - tokens.expiresIn)
  return age >= 0 && age < windowSeconds
}

/**
 * Whether a failed refresh may have reached Kimi and rotated the refresh
 * token: no answer came (the deadline passed, or the connection broke once
 * the request could have been sent). Its "refresh in flight" marker then
 * stays, so that a later rejection says what happened instead of "expired".
 * A refused connection, or any answer, proves nothing was rotated.
 */
export const mayHaveRotated: (error: { readonly _tag: string; readonly reason?: string | undefined }) => boolean =
  answerMayBeLost

/**
 * Whether a proactive refresh that could not get the lock in time may serve
 * `tokens` instead of failing: the token still has more than 5 s to live
 * (the same margin as a transient fault). A forced refresh (the API refused
 * the token) never may. Waiting for a holder that is alive but stuck (stopped,
 * or waiting on a slow token endpoint) used to fail requests with
 * LOCK_TIMEOUT while a valid token was at hand.
 */
export const servableWhileLockBusy = (tokens: TokenSet | undefined, force: boolean, nowSeconds: number): tokens is TokenSet =>
  !force && tokens !== undefined && tokens.remainingSeconds(nowSeconds) > 5

/** After a lock wait that timed out, proactive refreshes wait this long before queueing for the lock again. */
const BUSY_LOCK_BACKOFF_MILLIS = 10_000

/**
 * Whether a forced refresh for a rejected token should be refused: a refresh
 * forced by a rejection happened less than `windowSeconds` ago (in any
 * process: `lastForcedMillis`, see `ForcedRefreshLog`) and the rejected token,
 * the one on disk, was issued within the window too, so it is most likely
 * what that refresh produced and Kimi refuses it as well. A first rejection
 * (Kimi revoked a token once, even a fresh one) is still healed by a refresh.
 */
export const refusesAgain = (
  tokens: TokenSet,
  nowSeconds: number,
  lastForcedMillis: number | undefined,
  windowSeconds: number = REJECTED_FRESH_TOKEN_SECONDS
): boolean => {
  if (lastForcedMillis === undefined) return false
  const since = nowSeconds * 1000 - lastForcedMillis
  return since >= 0 && since < windowSeconds * 1000 && issuedMomentsAgo(tokens, nowSeconds, windowSeconds)
}

const latest = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.max(a, b))

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

    const retryPolicy = {
      baseDelay: options.retryBaseDelay ?? "500 millis",
      maxDelay: options.retryMaxDelay ?? "8 seconds"
    }
    const maxRetryMillis = Duration.toMillis(Duration.fromInputUnsafe(options.maxRetryTime ?? "20 seconds"))
    /** When this process last refreshed because the API rejected a token (epoch millis). */
    let lastForcedMillis: number | undefined
    /** Not before this time (millis) does a proactive refresh try again after a transient fault. */
    let retryNotBefore = 0
    /** Transient faults of proactive refreshes in a row, for the growing backoff. */
    let proactiveFailures = 0
    /**
     * Tokens the server issued that could not be saved, and the refresh token
     * they replaced. While the file still holds that spent one, these win.
     */
    let unsaved: { readonly tokens: TokenSet; readonly spent: Redacted.Redacted<string> } | undefined

    const interruptedMessage = (i: InterruptedRefresh) =>
      `Your Kimi login was revoked: an earlier token refresh (process ${i.pid} on ${i.hostname}, started ${i.startedAt}) ` +
      `was interrupted, or got no answer in time, after Kimi had rotated the refresh token and before the new tokens ` +
      `were saved, so the saved refresh token was already spent. Nothing was deleted; ${LOGIN_HINT}.`

    /** Space for the save, reserved before the request (or a plain save for stores without it). */
    const prepare = (s: TokenStoreShape): Effect.Effect<PreparedSave, TokenStoreError, Scope.Scope> =>
      s.prepareSave ?? Effect.succeed({
        interrupted: undefined,
        markInFlight: Effect.void,
        abandon: Effect.void,
        commit: s.save
      })

    /** The outcome of one locked attempt: tokens, or a transient fault with the tokens current at the time. */
    type Attempt =
      | { readonly _tag: "Done"; readonly tokens: TokenSet }
      | { readonly _tag: "Transient"; readonly error: TransientError; readonly current: TokenSet }

    /**
     * One request with `base.refreshToken`, between the in-flight marker and the
     * save into the reserved space. A failed save keeps the tokens in memory.
     *
     * Uninterruptible from the marker to the save: once the request is sent the
     * server may have rotated (spent) the refresh token, so an interruption
     * (Ctrl-C, SIGTERM, an aborted facade call, a disposed runtime) waits for
     * the answer and its save instead of dropping the only live refresh token.
     * The wait is bounded by the request's own deadline (`requestTimeout`),
     * which still applies inside: the timeout races on interruptible fibers.
     */
    const refreshOnce = (base: TokenSet, prepared: PreparedSave) =>
      Effect.gen(function*() {
        yield* prepared.markInFlight
        const result = yield* Effect.result(oauth.refreshToken(base.refreshToken, base))
        if (result._tag === "Failure") {
          const error = result.failure
          if (error._tag === "InvalidResponseError" && error.rotatedRefreshToken !== undefined) {
            // The server rotated the refresh token but sent an unusable access token: the one we sent is spent,
            // so keep the new one (beside the old access token, due at once) rather than lose the login.
            const kept = new TokenSet({ ...base, refreshToken: error.rotatedRefreshToken })
            const saved = yield* Effect.result(prepared.commit(kept))
            if (saved._tag === "Failure") unsaved = { tokens: kept, spent: base.refreshToken }
            return yield* Effect.fail(error)
          }
          // No answer: Kimi may have rotated it. The marker stays until a save, to explain a later rejection.
          if (!mayHaveRotated(error)) yield* prepared.abandon
          return yield* Effect.fail(error)
        }
        const refreshed = result.success
        const saved = yield* Effect.result(prepared.commit(refreshed))
        if (saved._tag === "Failure") {
          unsaved = { tokens: refreshed, spent: base.refreshToken }
          cached = refreshed
          return yield* new TokenStoreError({
            path: store.path,
            cause: saved.failure,
            message: `Kimi issued new tokens, but they could not be saved: ${saved.failure.message}. This process ` +
              `keeps them in memory and saves them at its next refresh; until then other programs find only the ` +
              `spent refresh token there and must log in again. Fix the disk problem and run this again.`
          })
        }
        yield* Effect.logDebug(
          sameSecret(refreshed.refreshToken, base.refreshToken)
            ? "token refresh: done; the server sent no new refresh token, the stored one is kept"
            : "token refresh: done; the refresh token was rotated and stored"
        ).pipe(Effect.annotateLogs({ expiresAt: refreshed.expiresAt }))
        return refreshed
      }).pipe(Effect.uninterruptible)

    /** The tokens to start from: the file, unless this process holds newer unsaved ones. */
    const current: Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> = Effect.gen(function*() {
      const pending = unsaved
      if (pending === undefined) return yield* load
      const fromDisk = yield* Effect.result(load)
      if (
        fromDisk._tag === "Failure" && fromDisk.failure._tag === "NotLoggedInError" && fromDisk.failure.reason === "no-tokens" &&
        loggedOut([pending.spent, pending.tokens.refreshToken, pending.tokens.accessToken])
      ) {
        // The file is gone by a logout of this login: the tokens held in memory are never saved back.
        unsaved = undefined
        return yield* Effect.fail(fromDisk.failure)
      }
      if (fromDisk._tag === "Success" && !sameSecret(fromDisk.success.refreshToken, pending.spent)) {
        // Someone wrote other tokens since (a new login): those win.
        unsaved = undefined
        return fromDisk.success
      }
      // The file still holds the refresh token we spent: ours are the live ones. Save them now if we can.
      const saved = yield* Effect.result(store.save(pending.tokens))
      if (saved._tag === "Success") unsaved = undefined
      else yield* Effect.logWarning("token refresh: the tokens held in memory still cannot be saved")
      return pending.tokens
    })

    /** The locked part of one attempt: re-read, decide, reserve the save, refresh once, store. */
    const attemptLocked = (rejected: Redacted.Redacted<string> | undefined, force: boolean): Effect.Effect<Attempt, TokenError> =>
      store.withLock(Effect.scoped(
        Effect.gen(function*() {
          const onDisk = yield* current
          const now = yield* nowSeconds
          const replacedElsewhere = rejected !== undefined && !sameSecret(onDisk.accessToken, rejected)
          if (force ? replacedElsewhere && onDisk.remainingSeconds(now) > 0 : !isDue(onDisk, now, windowSeconds)) {
            yield* Effect.logDebug("token refresh: another process already refreshed; using the tokens on disk")
            return { _tag: "Done", tokens: onDisk } as const
          }
          const lastForced = force ? latest(lastForcedMillis, readForcedRefreshAt(store.path)) : undefined
          if (force && rejected !== undefined && !replacedElsewhere && refusesAgain(onDisk, now, lastForced)) {
            // The API refused a token issued moments ago: another refresh would not help. The same token back
            // tells the caller (KimiRequest: "Rejected"), and the family is not rotated again.
            yield* Effect.logDebug("token refresh: the API rejected a token issued moments ago; not refreshing again").pipe(
              Effect.annotateLogs({ ageSeconds: Math.round(now - (onDisk.expiresAt - onDisk.expiresIn)) })
            )
            return { _tag: "Done", tokens: onDisk } as const
          }
          yield* Effect.logDebug(
            force ? "token refresh: forced (the API rejected the access token)" : "token refresh: due, refreshing"
          ).pipe(Effect.annotateLogs({ remainingSeconds: Math.round(onDisk.remainingSeconds(now)) }))
          const prepared = yield* prepare(store)
          const revoked = (e: InvalidGrantError, detail?: string) =>
            notLoggedIn(
              "refresh-rejected",
              detail ?? `Your Kimi login has expired or was revoked (${e.status})`
            )
          const outcome = yield* refreshOnce(onDisk, prepared).pipe(
            Effect.map((tokens): Attempt => ({ _tag: "Done", tokens })),
            Effect.catchTag("InvalidGrantError", (e: InvalidGrantError) =>
              // Re-read once: a tool that does not use our lock may have rotated the tokens.
              load.pipe(
                Effect.flatMap((again): Effect.Effect<Attempt, TokenError> =>
                  sameSecret(again.refreshToken, onDisk.refreshToken)
                    ? prepared.interrupted !== undefined
                      ? Effect.fail(new NotLoggedInError({ reason: "refresh-rejected", message: interruptedMessage(prepared.interrupted) }))
                      : Effect.fail(revoked(e))
                    : again.remainingSeconds(now) > 0
                    ? Effect.succeed({ _tag: "Done", tokens: again })
                    : refreshOnce(again, prepared).pipe(
                      Effect.map((tokens): Attempt => ({ _tag: "Done", tokens })),
                      Effect.catchTag("InvalidGrantError", (e2: InvalidGrantError) => Effect.fail(revoked(e2))),
                      Effect.catchIf(isTransient, (error) => Effect.succeed<Attempt>({ _tag: "Transient", error, current: again }))
                    )
                )
              )),
            Effect.catchIf(isTransient, (error) => Effect.succeed<Attempt>({ _tag: "Transient", error, current: onDisk })),
            // A proactive refresh whose answer rotated the refresh token but held an unusable access token: the new
            // refresh token is stored (refreshOnce), and the current access token still works, so serve it; the set
            // stays due, so the next call refreshes with the new refresh token.
            Effect.catchTag("InvalidResponseError", (error: InvalidResponseError) =>
              error.rotatedRefreshToken !== undefined && !force && onDisk.remainingSeconds(now) > 5
                ? Effect.succeed<Attempt>({ _tag: "Done", tokens: new TokenSet({ ...onDisk, refreshToken: error.rotatedRefreshToken }) })
                : Effect.fail(error)),
            // Refused for good: note it beside the file (still under the lock, so the file holds the refused token),
            // so that `status` can say so without a request. Nothing is deleted.
            Effect.tapError((error) =>
              error._tag === "NotLoggedInError" && error.reason === "refresh-rejected" && store.recordRefusal
                ? store.load.pipe(
                  Effect.orElseSucceed(() => undefined),
                  Effect.flatMap((refused) =>
                    refused && store.recordRefusal ? store.recordRefusal(refused, error.message.split(";")[0]!) : Effect.void
                  )
                )
                : Effect.void
            )
          )
          if (force && outcome._tag === "Done" && outcome.tokens !== onDisk) {
            // Recorded for every process: a rejection of what this refresh issued is not refreshed again for a while.
            lastForcedMillis = now * 1000
            noteForcedRefresh(store.path, lastForcedMillis)
          }
          if (outcome._tag === "Done" && prepared.interrupted !== undefined) {
            yield* Effect.logInfo("token refresh: an earlier refresh had been interrupted; the login survived it")
          }
          return outcome
        })
      ))

    /**
     * A refresh, retried outside the lock: a proactive one serves the valid
     * token at once on a transient fault; one that must succeed waits (the
     * lock released) within the `maxRetryTime` budget.
     */
    const refreshLocked = (rejected: Redacted.Redacted<string> | undefined, force: boolean) =>
      Effect.gen(function*() {
        const start = yield* Clock.currentTimeMillis
        for (let attempt = 1;; attempt++) {
          const outcome = yield* attemptLocked(rejected, force)
          if (outcome._tag === "Done") {
            retryNotBefore = 0
            proactiveFailures = 0
            return outcome.tokens
          }
          const { error, current: tokens } = outcome
          const now = yield* Clock.currentTimeMillis
          if (!force && tokens.remainingSeconds(now / 1000) > 5) {
            // Proactive: the current token still works. Serve it now; try again after a backoff.
            const delay = yield* backoffDelay(error, ++proactiveFailures, retryPolicy)
            retryNotBefore = Math.min(now + delay, (tokens.expiresAt - 5) * 1000)
            yield* Effect.logWarning("token refresh failed for now; the current token is still valid").pipe(
              Effect.annotateLogs({ error: error._tag, retryInMillis: Math.max(0, retryNotBefore - now) })
            )
            return tokens
          }
          if (isRetryAfterTooLong(error, maxRetryMillis)) return yield* Effect.fail(retryAfterTooLong(error, maxRetryMillis))
          const delay = yield* backoffDelay(error, attempt, retryPolicy)
          if (attempt >= attempts || now - start + delay > maxRetryMillis) return yield* Effect.fail(error)
          yield* Effect.logDebug("token refresh: transient fault, retrying (the lock is released meanwhile)").pipe(
            Effect.annotateLogs({ error: error._tag, attempt, delayMillis: delay })
          )
          yield* Effect.sleep(Duration.millis(delay))
        }
      })

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
          // A proactive refresh failed a moment ago: keep serving the valid token until the backoff ends.
          if (!force && cached !== undefined && now * 1000 < retryNotBefore && cached.remainingSeconds(now) > 5) {
            return cached
          }
          const valid = cached ?? (force ? undefined : yield* Effect.option(load).pipe(Effect.map((o) => o._tag === "Some" ? o.value : undefined)))
          const fresh = yield* refreshLocked(rejected, force).pipe(
            Effect.catchTag("LockTimeoutError", (e: LockTimeoutError) =>
              servableWhileLockBusy(valid, force, now)
                ? Effect.sync(() => {
                  retryNotBefore = Math.min(now * 1000 + BUSY_LOCK_BACKOFF_MILLIS, (valid.expiresAt - 5) * 1000)
                  return valid
                }).pipe(Effect.tap(() => Effect.logWarning("token refresh: the lock stayed busy; the current token is still valid")))
                : Effect.fail(e))
          )
          cached = fresh
          return fresh
        })
      )

    /** Whether a logout recorded any of `secrets` (`logged-out.json` in the storage folder). */
    const loggedOut = (secrets: ReadonlyArray<Redacted.Redacted<string>>) =>
      isLoggedOut(settings.storageDir, secrets.map((s) => Redacted.value(s)))

    /** When a token served from memory was last seen still stored (millis). */
    let presenceCheckedAt = 0
    /**
     * The cached set, unless a logout in another process removed it: the file
     * is gone and `logged-out.json` records this login. From then on this
     * process serves nothing of it. Read at most every
     * {@link PRESENCE_CHECK_MILLIS}; any other state (a file that cannot be read
     * right now, or was moved aside as damaged) keeps the cached set.
     */
    const servedFromMemory = (tokens: TokenSet, nowMillis: number): Effect.Effect<TokenSet, TokenError> => {
      if (nowMillis - presenceCheckedAt < PRESENCE_CHECK_MILLIS) return Effect.succeed(tokens)
      presenceCheckedAt = nowMillis
      return Effect.flatMap(Effect.result(store.load), (r) => {
        // Only a logout of this very login counts: not a file moved aside as damaged, nor one that other tokens replaced.
        if (r._tag === "Failure" || r.success !== undefined || !loggedOut([tokens.refreshToken, tokens.accessToken])) {
          return Effect.succeed(tokens)
        }
        if (cached === tokens) cached = undefined
        unsaved = undefined
        return Effect.fail(notLoggedIn("no-tokens", `You were logged out of Kimi (no tokens at ${store.path} any more)`))
      })
    }

    const getTokens: Effect.Effect<TokenSet, TokenError> = Effect.suspend(() =>
      Effect.flatMap(Clock.currentTimeMillis, (ms) => {
        const c = cached
        return c !== undefined && !isDue(c, ms / 1000, windowSeconds) ? servedFromMemory(c, ms) : serve(undefined, false)
      })
    ).pipe(Effect.withSpan("TokenManager.getTokens"))

    const invalidate = (rejected?: Redacted.Redacted<string>) =>
      serve(rejected, true).pipe(Effect.withSpan("TokenManager.invalidate"))

    /**
     * A new login that could not be saved is still served by this process, as
     * unsaved tokens are after a refresh: they win while the file holds what it
     * held before (the refresh token recorded as `spent`), and are saved at the
     * next refresh if the disk allows it by then.
     */
    const keepUnsavedLogin = (tokens: TokenSet) =>
      Effect.flatMap(Effect.option(load), (before) =>
        Effect.sync(() => {
          unsaved = { tokens, spent: before._tag === "Some" ? before.value.refreshToken : Redacted.make("") }
          cached = tokens
        }))

    const setTokens = (tokens: TokenSet) =>
      permit.withPermit(
        store.withLock(store.save(tokens)).pipe(
          Effect.tap(() => Effect.sync(() => (cached = tokens))),
          Effect.tapError(() => keepUnsavedLogin(tokens))
        )
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
          : Math.max((tokens.expiresAt - refreshThresholdSeconds(tokens, windowSeconds)) * 1000, retryNotBefore) - after
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
