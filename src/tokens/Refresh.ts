/**
 * The locked refresh step of the token manager: under the token store's file
 * lock, re-read the file, decide, reserve the save, send one refresh, store
 * its answer; retried outside the lock on a {@link Schedule}.
 *
 * - **A sent refresh is awaited for `refreshAnswerTimeout`** (5 minutes by
 *   default), not the request timeout: Kimi rotates the refresh token on
 *   receipt, so the answer is the only copy of the new one. The lock stays
 *   held meanwhile and the in-flight marker says a refresh is on the wire;
 *   waiters in other processes wait for the lock (`lockWaitFor` outlasts the
 *   bound) and then find the new tokens on disk.
 * - **Interrupted while on the wire** (Ctrl-C, an aborted call, a disposed
 *   runtime): the answer is still awaited, but at most the request timeout
 *   (the shutdown budget of the library; the CLI caps it further), then
 *   saved. Only a running process waits the long bound.
 * - **An unknown outcome** (no answer within the bound, or the connection
 *   broke after sending) is never replayed blindly: the in-flight marker
 *   stays, the refresh token is recorded as not to be sent again by this
 *   process ({@link HeldBackRefreshTokens}), and the call fails with
 *   {@link refreshOutcomeUnknown} (or, proactive, serves the still-valid
 *   token). The next process that tries (the user running `kimi-auth token`)
 *   sends it once: a good answer means the first never arrived; a refusal
 *   says the login was lost to the unknown refresh and how to log in again.
 * - **A refusal** (`invalid_grant`) is final for that refresh token in this
 *   process: it is never sent again, even after the runtime is rebuilt
 *   (OpenCode's plugin shares one {@link HeldBackRefreshTokens} per provider).
 *
 * Decisions are in `./TokenManagerDecisions.ts`; state is one `Ref`.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import type * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import {
  advised,
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
  TokenStoreError,
  type TransientError
} from "../Errors.js"
import type { OAuthClientShape } from "../oauth/OAuthClient.js"
import { backoffDelay, isRetryAfterTooLong, retryAfterTooLong, type RetryPolicy } from "../oauth/Retry.js"
import type { PreparedSave, TokenStoreShape } from "../storage/TokenStore.js"
import { TokenSet } from "./TokenSet.js"
import {
  badAnswerNotNow,
  declinesForcedRefresh,
  interruptedDetail,
  isOutcomeUnknown,
  isRefusedForGood,
  mayHaveRotated,
  notNow,
  type NotNow,
  readRefusedRefresh,
  refreshedElsewhere,
  refreshOutcomeUnknown,
  retriesAfter,
  retryGivesUp,
  servedNotNow,
  spentByRefresh,
  type HeldBackRefreshTokens,
  startingTokens,
  whatHappened,
  type UnsavedTokens
} from "./TokenManagerDecisions.js"

/** Every way getting a token can fail. Transient errors appear only after retries ran out. */
export type TokenError =
  | NotLoggedInError
  | TokenStoreError
  | LockTimeoutError
  | NetworkError
  | ServerError
  | InvalidResponseError
  | OAuthError

/** What one token manager remembers between calls (one `Ref`, changed by the updaters below). */
export interface ManagerState {
  /** The set served from memory. */
  readonly cached: TokenSet | undefined
  /** Tokens the server issued that could not be saved. While the file still holds the spent refresh token, these win. */
  readonly unsaved: UnsavedTokens | undefined
  /** When this process last refreshed because the API rejected a token (epoch millis). */
  readonly lastForcedMillis: number | undefined
  /** Not before this time (millis) does a proactive refresh answered "not now" try again. */
  readonly retryAtMillis: number
  /** "Not now" answers of proactive refreshes in a row, for the growing backoff. */
  readonly proactiveFailures: number
  /** When a token served from memory was last seen still stored (millis). */
  readonly presenceCheckedAt: number
  /** The refresh on its way, which every caller waits on instead of sending its own. */
  readonly inFlight: Deferred.Deferred<TokenSet, TokenError> | undefined
}

/** The state of a new manager. */
export const initialState: ManagerState = {
  cached: undefined,
  unsaved: undefined,
  lastForcedMillis: undefined,
  retryAtMillis: 0,
  proactiveFailures: 0,
  presenceCheckedAt: 0,
  inFlight: undefined
}

/** The services, settings and state every piece works with. */
export interface Manager {
  readonly store: TokenStoreShape
  readonly oauth: OAuthClientShape
  readonly windowSeconds: number
  readonly attempts: number
  readonly retryPolicy: Pick<RetryPolicy, "baseDelay" | "maxDelay">
  readonly maxRetryMillis: number
  /** The ordinary request timeout: how long an interrupted caller still waits for an answer on the wire. */
  readonly requestTimeout: Duration.Duration
  /** How long a sent refresh is awaited (`refreshAnswerTimeout`), in millis. */
  readonly answerMillis: number
  readonly state: Ref.Ref<ManagerState>
  /** Refresh tokens this process will not send again. */
  readonly spent: HeldBackRefreshTokens
  /** Whether a logout recorded any of `secrets` (`logged-out.json` in the storage folder). */
  readonly loggedOut: (secrets: ReadonlyArray<Redacted.Redacted<string>>) => boolean
  /** The stored tokens, or why there are none. */
  readonly load: Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError>
}

/** Changes the state with `f`. */
export const update = (m: Manager, f: (s: ManagerState) => Partial<ManagerState>): Effect.Effect<void> =>
  Ref.update(m.state, (s) => ({ ...s, ...f(s) }))

/** Sets the served set (and, with `unsaved`, the tokens still to be saved). */
export const setCached = (m: Manager, cached: TokenSet | undefined, unsaved?: UnsavedTokens): Effect.Effect<void> =>
  update(m, () => unsaved === undefined ? { cached } : { cached, unsaved })

/** The outcome of one locked attempt: tokens, or "not now" with the tokens current at the time. */
export type Attempt =
  | { readonly _tag: "Done"; readonly tokens: TokenSet }
  | NotNow<TransientError | InvalidResponseError>

const done = (tokens: TokenSet): Attempt => ({ _tag: "Done", tokens })

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => ms / 1000)

const sameSecret = (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => Redacted.value(a) === Redacted.value(b)

const notLoggedIn = (reason: NotLoggedInError["reason"], detail: string) =>
  new NotLoggedInError({ reason, ...advised(detail, { _tag: "LogIn" }) })

/** The stored tokens of `store`; none, or a damaged file, is {@link NotLoggedInError}. */
export const loadTokens = (store: TokenStoreShape): Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> =>
  store.load.pipe(
    Effect.catchTag("CorruptTokenFileError", (e: CorruptTokenFileError) =>
      Effect.fail(new NotLoggedInError({ reason: "corrupt-file", message: e.message, detail: e.detail, hint: e.hint }))),
    Effect.flatMap((t) =>
      t === undefined
        ? Effect.fail(notLoggedIn("no-tokens", `You are not logged in to Kimi (no tokens at ${store.path})`))
        : Effect.succeed(t)
    )
  )

/** Space for the save, reserved before the request (or a plain save for stores without it). */
const prepare = (s: TokenStoreShape): Effect.Effect<PreparedSave, TokenStoreError, Scope.Scope> =>
  s.prepareSave ?? Effect.succeed({
    interrupted: undefined,
    markInFlight: Effect.void,
    abandon: Effect.void,
    commit: s.save
  })

/**
 * Saves what a refresh of `base` returned into the reserved space. A failed
 * save keeps the tokens in memory (served, and saved at the next refresh)
 * and fails with a {@link TokenStoreError} saying so.
 */
const saveRefreshed = (m: Manager, base: TokenSet, refreshed: TokenSet, prepared: PreparedSave) =>
  Effect.gen(function*() {
    const saved = yield* Effect.result(prepared.commit(refreshed))
    if (saved._tag === "Failure") {
      yield* setCached(m, refreshed, { tokens: refreshed, spent: base.refreshToken })
      return yield* new TokenStoreError({
        path: m.store.path,
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
  })

/**
 * A failed refresh request of `base`: an unusable answer that still rotated
 * the refresh token keeps the new one (the one sent is spent) beside the old
 * access token, due at once; no answer leaves the in-flight marker (Kimi may
 * have rotated), records the token as not to be sent again, and fails with
 * {@link refreshOutcomeUnknown}; any other failure removes the marker.
 */
const afterFailedRequest = (m: Manager, base: TokenSet, prepared: PreparedSave, error: TokenError | InvalidGrantError) =>
  Effect.gen(function*() {
    if (error._tag === "InvalidResponseError" && error.rotatedRefreshToken !== undefined) {
      const kept = new TokenSet({ ...base, refreshToken: error.rotatedRefreshToken })
      const saved = yield* Effect.result(prepared.commit(kept))
      if (saved._tag === "Failure") yield* update(m, () => ({ unsaved: { tokens: kept, spent: base.refreshToken } }))
      return yield* Effect.fail(error)
    }
    if (error._tag === "NetworkError" && mayHaveRotated(error)) {
      m.spent.note(base.refreshToken, "outcome-unknown")
      yield* Effect.logWarning("token refresh: sent, but its outcome is unknown; the in-flight marker stays")
      return yield* Effect.fail(refreshOutcomeUnknown(error.url, whatHappened(error.message)))
    }
    yield* prepared.abandon
    return yield* Effect.fail(error)
  })

/**
 * Sends the refresh and awaits its answer: for the request's own deadline
 * (`refreshAnswerTimeout`) while running; once interrupted, at most the
 * request timeout more. The interruption then takes effect after the save.
 */
const sendAndAwait = (m: Manager, base: TokenSet) =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      // Started at once, so that it is on the wire before this fiber yields.
      const request = yield* Effect.forkChild(m.oauth.refreshToken(base.refreshToken, base), { startImmediately: true })
      const first = yield* Effect.exit(restore(Fiber.await(request)))
      if (Exit.isSuccess(first)) return first.value
      yield* Effect.logWarning("token refresh: interrupted while on the wire; waiting a little for the answer so it is saved")
      const late = yield* Fiber.await(request).pipe(Effect.timeoutOption(m.requestTimeout))
      if (late._tag === "Some") return late.value
      yield* Fiber.interrupt(request)
      return yield* Fiber.await(request)
    })
  )

/**
 * One request with `base.refreshToken`, between the in-flight marker and the
 * save into the reserved space. A failed save keeps the tokens in memory.
 *
 * Uninterruptible from the marker to the save: once the request is sent the
 * server may have rotated (spent) the refresh token, so an interruption
 * waits for the answer and its save (at most the request timeout, see
 * {@link sendAndAwait}) instead of dropping the only live refresh token.
 */
const refreshOnce = (m: Manager, base: TokenSet, prepared: PreparedSave) =>
  Effect.gen(function*() {
    yield* prepared.markInFlight
    const result = yield* sendAndAwait(m, base).pipe(Effect.flatten, Effect.result)
    // Noted before the save: the sent token is spent even when the new ones cannot be stored.
    const spent = spentByRefresh(base.refreshToken, result)
    if (spent !== undefined && m.store.recordSpent) yield* m.store.recordSpent(spent)
    if (result._tag === "Failure") return yield* afterFailedRequest(m, base, prepared, result.failure)
    return yield* saveRefreshed(m, base, result.success, prepared)
  }).pipe(Effect.uninterruptible)

/** The tokens to start from: the file, unless this process holds newer unsaved ones ({@link startingTokens}). */
const current = (m: Manager): Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> =>
  Effect.gen(function*() {
    const pending = (yield* Ref.get(m.state)).unsaved
    if (pending === undefined) return yield* m.load
    const fromDisk = yield* Effect.result(m.load)
    switch (startingTokens(pending, fromDisk, m.loggedOut)) {
      case "logged-out":
      case "file":
        // Logged out (never saved back), or someone wrote other tokens since (a new login): the file wins.
        yield* update(m, () => ({ unsaved: undefined }))
        return yield* Effect.fromResult(fromDisk)
      case "unsaved": {
        // The file still holds the refresh token we spent: ours are the live ones. Save them now if we can.
        const saved = yield* Effect.result(m.store.save(pending.tokens))
        if (saved._tag === "Success") yield* update(m, () => ({ unsaved: undefined }))
        else yield* Effect.logWarning("token refresh: the tokens held in memory still cannot be saved")
        return pending.tokens
      }
    }
  })

const revoked = (e: InvalidGrantError) =>
  notLoggedIn("refresh-rejected", `Your Kimi login has expired or was revoked (${e.status})`)

/** The error for a refresh token this process already saw refused: it is not sent again. */
const refusedBefore = () =>
  notLoggedIn(
    "refresh-rejected",
    "Your Kimi login has expired or was revoked (Kimi refused this refresh token earlier in this process, so it is not sent again)"
  )

const notNowOf = (tokens: TokenSet) => (error: TransientError) => Effect.succeed<Attempt>(notNow(error, tokens))

/** A refused refresh of `onDisk`: re-read the file once (a tool that does not use our lock may have rotated the tokens) and act on {@link readRefusedRefresh}. */
const afterRefusal = (m: Manager, onDisk: TokenSet, prepared: PreparedSave, now: number, e: InvalidGrantError) =>
  Effect.flatMap(m.load, (again): Effect.Effect<Attempt, TokenError> => {
    const reading = readRefusedRefresh(onDisk, again, prepared.interrupted, now)
    if (reading._tag === "Interrupted" || reading._tag === "Revoked") m.spent.note(onDisk.refreshToken, "refused")
    switch (reading._tag) {
      case "Interrupted":
        return Effect.fail(notLoggedIn("refresh-rejected", interruptedDetail(reading.interrupted)))
      case "Revoked":
        return Effect.fail(revoked(e))
      case "RotatedElsewhere":
        return Effect.succeed(done(reading.tokens))
      case "RefreshAgain":
        return refreshOnce(m, reading.tokens, prepared).pipe(
          Effect.map(done),
          Effect.catchTag("InvalidGrantError", (e2: InvalidGrantError) =>
            Effect.sync(() => m.spent.note(reading.tokens.refreshToken, "refused")).pipe(Effect.andThen(Effect.fail(revoked(e2))))),
          Effect.catchIf(isTransient, notNowOf(reading.tokens))
        )
    }
  })

/** Notes a refusal for good beside the file (still under the lock, so the file holds the refused token). Nothing is deleted. */
const noteRefusal = (store: TokenStoreShape, error: TokenError) =>
  isRefusedForGood(error)
    ? store.load.pipe(
      Effect.orElseSucceed(() => undefined),
      Effect.flatMap((refused) => refused ? store.recordRefusal(refused, error.message.split(";")[0]!) : Effect.void)
    )
    : Effect.void

/** The refresh of `onDisk` under the lock, its failures read: refused, "not now" (transient, or an unusable answer that rotated). */
const refreshFrom = (m: Manager, onDisk: TokenSet, prepared: PreparedSave, now: number) =>
  refreshOnce(m, onDisk, prepared).pipe(
    Effect.map(done),
    Effect.catchTag("InvalidGrantError", (e: InvalidGrantError) => afterRefusal(m, onDisk, prepared, now, e)),
    Effect.catchIf(isTransient, notNowOf(onDisk)),
    // The new refresh token is stored (refreshOnce) and the current access token may still work.
    Effect.catchTag("InvalidResponseError", (error: InvalidResponseError) => {
      const n = badAnswerNotNow(error, onDisk)
      return n !== undefined ? Effect.succeed<Attempt>(n) : Effect.fail(error)
    }),
    Effect.tapError((error) => noteRefusal(m.store, error))
  )

/** Whether this process refuses to send `onDisk`'s refresh token: what it comes to, or `undefined` to go ahead. */
const spentHere = (m: Manager, onDisk: TokenSet): Effect.Effect<Attempt, TokenError> | undefined => {
  const reason = m.spent.reasonFor(onDisk.refreshToken)
  if (reason === undefined) return undefined
  if (reason === "refused") return Effect.fail(refusedBefore())
  return Effect.succeed(notNow(refreshOutcomeUnknown("", "A token refresh sent earlier by this process got no answer."), onDisk))
}

/** The locked part of one attempt: re-read, decide, reserve the save, refresh once, store. */
const attemptLocked = (m: Manager, rejected: Redacted.Redacted<string> | undefined, force: boolean): Effect.Effect<Attempt, TokenError> =>
  m.store.withLock(Effect.scoped(
    Effect.gen(function*() {
      const onDisk = yield* current(m)
      const now = yield* nowSeconds
      if (refreshedElsewhere(onDisk, rejected, force, now, m.windowSeconds)) {
        yield* Effect.logDebug("token refresh: another process already refreshed; using the tokens on disk")
        return done(onDisk)
      }
      const lastForced = (yield* Ref.get(m.state)).lastForcedMillis
      const seen = force ? yield* m.store.forcedRefreshSeen(onDisk, now * 1000) : undefined
      if (force && declinesForcedRefresh(onDisk, rejected, now, latest(lastForced, seen?.atMillis), seen?.issuedIt)) {
        // The API refused a token issued moments ago: another refresh would not help. The same token back
        // tells the caller (KimiRequest: "Rejected"), and the family is not rotated again.
        yield* Effect.logDebug("token refresh: the API rejected a token issued moments ago; not refreshing again").pipe(
          Effect.annotateLogs({ ageSeconds: Math.round(now - (onDisk.expiresAt - onDisk.expiresIn)) })
        )
        return done(onDisk)
      }
      const spent = spentHere(m, onDisk)
      if (spent !== undefined) return yield* spent
      yield* Effect.logDebug(
        force ? "token refresh: forced (the API rejected the access token)" : "token refresh: due, refreshing"
      ).pipe(Effect.annotateLogs({ remainingSeconds: Math.round(onDisk.remainingSeconds(now)) }))
      const prepared = yield* prepare(m.store)
      const outcome = yield* refreshFrom(m, onDisk, prepared, now)
      if (force && outcome._tag === "Done" && outcome.tokens !== onDisk) {
        // Recorded for every process: a rejection of what this refresh issued is not refreshed again for a while.
        yield* update(m, () => ({ lastForcedMillis: now * 1000 }))
        yield* m.store.noteForcedRefresh(outcome.tokens, now * 1000)
      }
      if (outcome._tag === "Done" && prepared.interrupted !== undefined) {
        yield* Effect.logInfo("token refresh: an earlier refresh had been interrupted; the login survived it")
      }
      return outcome
    })
  ))

const latest = (a: number | undefined, b: number | undefined) => (a === undefined ? b : b === undefined ? a : Math.max(a, b))

/**
 * When a refresh that must succeed tries again after a transient fault: the
 * jittered backoff (or `Retry-After`), until the attempts or the
 * `maxRetryTime` budget run out ({@link retryGivesUp}); a `Retry-After`
 * longer than the budget ends it at once.
 */
const retrySchedule = (m: Manager): Schedule.Schedule<number, TokenError> =>
  Schedule.fromStepWithMetadata(Effect.succeed((meta: Schedule.InputMetadata<TokenError>) =>
    isRetryAfterTooLong(meta.input, m.maxRetryMillis)
      ? Cause.done(meta.attempt)
      : Effect.flatMap(backoffDelay(meta.input, meta.attempt, m.retryPolicy), (delay) =>
        retryGivesUp(meta.attempt, m.attempts, meta.elapsed, delay, m.maxRetryMillis)
          ? Cause.done(meta.attempt)
          : Effect.logDebug("token refresh: transient fault, retrying (the lock is released meanwhile)").pipe(
            Effect.annotateLogs({ error: meta.input._tag, attempt: meta.attempt, delayMillis: delay }),
            Effect.as([meta.attempt, Duration.millis(delay)] as [number, Duration.Duration])
          ))
  ))

/**
 * A refresh, retried outside the lock: "not now" that the serving rule
 * answers (a proactive call, a valid token) is returned at once; otherwise a
 * transient fault is retried on {@link retrySchedule} (never one whose
 * outcome is unknown: {@link retriesAfter}), and the last error stands.
 */
export const refreshWithRetries = (
  m: Manager,
  rejected: Redacted.Redacted<string> | undefined,
  force: boolean
): Effect.Effect<Attempt, TokenError> =>
  Effect.retry(
    Effect.flatMap(attemptLocked(m, rejected, force), (outcome) =>
      Effect.flatMap(nowSeconds, (now): Effect.Effect<Attempt, TokenError> => {
        if (outcome._tag === "Done" || servedNotNow(outcome, force, now) !== undefined) return Effect.succeed(outcome)
        const error = outcome.error
        return Effect.fail(isRetryAfterTooLong(error, m.maxRetryMillis) ? retryAfterTooLong(error, m.maxRetryMillis) : error)
      })),
    { schedule: retrySchedule(m), while: retriesAfter }
  )

/** Whether `error` ends a proactive call with "not now" rather than failing it (it is served meanwhile if the token allows). */
export const isNotNowError = (error: TokenError): error is TransientError | LockTimeoutError =>
  isTransient(error) || error._tag === "LockTimeoutError" || isOutcomeUnknown(error)
