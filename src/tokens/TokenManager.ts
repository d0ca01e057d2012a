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
 * Every decision above is a named pure function of this module, tested
 * directly (test/tokens/TokenManager.decisions.test.ts); the effects are small
 * pieces over one shared state, and {@link make} wires them.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Result from "effect/Result"
import type * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import {
  advised,
  adviseWith,
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
} from "../Errors.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { removedByLogout } from "../storage/Notes.js"
import { OAuthClient, type OAuthClientShape } from "../oauth/OAuthClient.js"
import { backoffDelay, isRetryAfterTooLong, retryAfterTooLong, type RetryPolicy } from "../oauth/Retry.js"
import { type InterruptedRefresh, type PreparedSave, TokenStore, type TokenStoreShape } from "../storage/TokenStore.js"
import { TokenSet } from "./TokenSet.js"
import { isDueAt, refreshThresholdSeconds as thresholdFor } from "../light/TokenValidation.js"

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
 * process: `lastForcedMillis`, and the store's forced-refresh note) and the rejected token,
 * the one on disk, was issued within the window too, so it is most likely
 * what that refresh produced and Kimi refuses it as well. A first rejection
 * (Kimi revoked a token once, even a fresh one) is still healed by a refresh.
 */
export const refusesAgain = (
  tokens: TokenSet,
  nowSeconds: number,
  lastForcedMillis: number | undefined,
  windowSeconds: number = REJECTED_FRESH_TOKEN_SECONDS,
  issuedIt?: boolean | undefined
): boolean => {
  if (lastForcedMillis === undefined) return false
  const since = nowSeconds * 1000 - lastForcedMillis
  // `issuedIt`: the note names this very token as what that refresh issued, whatever the clocks say of its age.
  return since >= 0 && since < windowSeconds * 1000 && (issuedIt === true || issuedMomentsAgo(tokens, nowSeconds, windowSeconds))
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
  new NotLoggedInError({ reason, ...advised(detail, { _tag: "LogIn" }) })


// ---------------------------------------------------------------------------
// Decisions: pure, each tested directly (test/tokens/TokenManager.decisions.test.ts).
// ---------------------------------------------------------------------------

/** A token with more than this many seconds left may still be served while its refresh fails or waits. */
export const SERVABLE_MARGIN_SECONDS = 5

/** Whether the set in hand no longer carries the `rejected` access token: someone (a caller ahead of us, another process) replaced it since. */
export const replacedSince = (tokens: TokenSet, rejected: Redacted.Redacted<string> | undefined): boolean =>
  rejected !== undefined && !sameSecret(tokens.accessToken, rejected)

/**
 * Whether the set held in memory answers a call without taking the lock: a
 * forced call (for `rejected`) is answered by a set that replaced the rejected
 * token; a proactive one by a set not yet due.
 */
export const answersFromMemory = (
  cached: TokenSet,
  rejected: Redacted.Redacted<string> | undefined,
  force: boolean,
  nowSeconds: number,
  windowSeconds: number
): boolean => (force ? replacedSince(cached, rejected) : !isDue(cached, nowSeconds, windowSeconds))

/**
 * Whether the tokens re-read under the lock make the refresh unnecessary,
 * because another process already refreshed: for a forced refresh, the file
 * holds a different access token than the rejected one and it has not
 * expired; for a proactive one, the file's set is no longer due. Otherwise we
 * must refresh now (due, or forced and nobody replaced the rejected token).
 */
export const refreshedElsewhere = (
  onDisk: TokenSet,
  rejected: Redacted.Redacted<string> | undefined,
  force: boolean,
  nowSeconds: number,
  windowSeconds: number
): boolean =>
  force
    ? replacedSince(onDisk, rejected) && onDisk.remainingSeconds(nowSeconds) > 0
    : !isDue(onDisk, nowSeconds, windowSeconds)

/**
 * Whether a forced refresh for the `rejected` token is declined and the same
 * token handed back: it is still the one on disk, and {@link refusesAgain}
 * (a forced refresh moments ago issued it, and the API refuses it as well).
 */
export const declinesForcedRefresh = (
  onDisk: TokenSet,
  rejected: Redacted.Redacted<string> | undefined,
  nowSeconds: number,
  lastForcedMillis: number | undefined,
  issuedIt?: boolean | undefined
): boolean =>
  rejected !== undefined && !replacedSince(onDisk, rejected) &&
  refusesAgain(onDisk, nowSeconds, lastForcedMillis, REJECTED_FRESH_TOKEN_SECONDS, issuedIt)

/**
 * Whether a refresh that failed for now (a transient fault, a busy lock, an
 * unusable answer) may serve `tokens` instead: only a proactive refresh, and
 * only while the token has more than {@link SERVABLE_MARGIN_SECONDS} to live.
 */
export const servableMeanwhile = (tokens: TokenSet, force: boolean, nowSeconds: number): boolean =>
  !force && tokens.remainingSeconds(nowSeconds) > SERVABLE_MARGIN_SECONDS

/**
 * Whether a proactive call serves `cached` without trying to refresh, because
 * a proactive refresh failed a moment ago and its backoff (`retryNotBeforeMillis`)
 * has not ended, while the token is still servable.
 */
export const servesDuringBackoff = (
  cached: TokenSet | undefined,
  force: boolean,
  nowSeconds: number,
  retryNotBeforeMillis: number
): cached is TokenSet =>
  cached !== undefined && nowSeconds * 1000 < retryNotBeforeMillis && servableMeanwhile(cached, force, nowSeconds)

/**
 * When a proactive refresh that failed for now may try again: after
 * `delayMillis`, but no later than {@link SERVABLE_MARGIN_SECONDS} before the
 * served token expires.
 */
export const retryNotBeforeFor = (tokens: TokenSet, nowMillis: number, delayMillis: number): number =>
  Math.min(nowMillis + delayMillis, (tokens.expiresAt - SERVABLE_MARGIN_SECONDS) * 1000)

/**
 * Whether a refresh that must succeed stops retrying a transient fault: its
 * attempts are used up, or waiting `delayMillis` more would overrun the
 * `maxRetryMillis` budget (`elapsedMillis` spent so far).
 */
export const retryGivesUp = (
  attempt: number,
  attempts: number,
  elapsedMillis: number,
  delayMillis: number,
  maxRetryMillis: number
): boolean => attempt >= attempts || elapsedMillis + delayMillis > maxRetryMillis

/**
 * What a proactive refresh serves when the server rotated the refresh token
 * but sent an unusable access token: the current access token with the new
 * refresh token (still due, so the next call refreshes with it), while the
 * current one is servable. `undefined`: the error stands.
 */
export const servedDespiteBadAnswer = (
  error: InvalidResponseError,
  onDisk: TokenSet,
  force: boolean,
  nowSeconds: number
): TokenSet | undefined =>
  error.rotatedRefreshToken !== undefined && servableMeanwhile(onDisk, force, nowSeconds)
    ? new TokenSet({ ...onDisk, refreshToken: error.rotatedRefreshToken })
    : undefined

/**
 * What a refused refresh (`invalid_grant`) means once the file is re-read:
 * - `Revoked`: the file still holds the refused refresh token; the login is gone.
 * - `Interrupted`: the same, and an earlier refresh was interrupted after its
 *   request (its marker was found): that is what spent the token.
 * - `RotatedElsewhere`: a tool that does not take our lock rotated the tokens;
 *   its access token is still valid and is used.
 * - `RefreshAgain`: it rotated them, but its access token has expired: refresh once with it.
 */
export type RefusalReading =
  | { readonly _tag: "Revoked" }
  | { readonly _tag: "Interrupted"; readonly interrupted: InterruptedRefresh }
  | { readonly _tag: "RotatedElsewhere"; readonly tokens: TokenSet }
  | { readonly _tag: "RefreshAgain"; readonly tokens: TokenSet }

/** Reads a refused refresh of `refused`, given the file re-read (`again`); see {@link RefusalReading}. */
export const readRefusal = (
  refused: TokenSet,
  again: TokenSet,
  interrupted: InterruptedRefresh | undefined,
  nowSeconds: number
): RefusalReading =>
  sameSecret(again.refreshToken, refused.refreshToken)
    ? interrupted !== undefined ? { _tag: "Interrupted", interrupted } : { _tag: "Revoked" }
    : again.remainingSeconds(nowSeconds) > 0
    ? { _tag: "RotatedElsewhere", tokens: again }
    : { _tag: "RefreshAgain", tokens: again }

/**
 * The refresh token a refresh spent, to note as such: the one `sent`, when
 * the answer rotated it (new tokens with another refresh token, or an
 * unusable answer that still carried one); `undefined` when nothing was
 * rotated (refused, unreachable, or the same refresh token kept).
 */
export const spentByRefresh = (
  sent: Redacted.Redacted<string>,
  result: Result.Result<TokenSet, { readonly _tag: string; readonly rotatedRefreshToken?: Redacted.Redacted<string> | undefined }>
): Redacted.Redacted<string> | undefined => {
  const kept = result._tag === "Success" ? result.success.refreshToken : result.failure.rotatedRefreshToken
  return kept !== undefined && !sameSecret(kept, sent) ? sent : undefined
}

/** Tokens the server issued that could not be saved, and the refresh token they replaced. */
export interface UnsavedTokens {
  readonly tokens: TokenSet
  readonly spent: Redacted.Redacted<string>
}

/**
 * Which tokens to start from while this process holds `pending` unsaved
 * ones, given the file as read (`fromDisk`):
 * - `logged-out`: the file is gone by a logout of this login (`isLoggedOut`
 *   of the spent or held secrets): the held tokens are never saved back.
 * - `file`: the file holds other tokens than the spent refresh token (a new login): those win.
 * - `unsaved`: the file still holds the spent refresh token (or cannot be
 *   read): ours are the live ones.
 * Without unsaved tokens, the file is always the start.
 */
export const startingTokens = (
  pending: UnsavedTokens,
  fromDisk: Result.Result<TokenSet, TokenStoreError | NotLoggedInError>,
  isLoggedOut: (secrets: ReadonlyArray<Redacted.Redacted<string>>) => boolean
): "logged-out" | "file" | "unsaved" => {
  if (
    fromDisk._tag === "Failure" && fromDisk.failure._tag === "NotLoggedInError" && fromDisk.failure.reason === "no-tokens" &&
    isLoggedOut([pending.spent, pending.tokens.refreshToken, pending.tokens.accessToken])
  ) return "logged-out"
  if (fromDisk._tag === "Success" && !sameSecret(fromDisk.success.refreshToken, pending.spent)) return "file"
  return "unsaved"
}

/** Whether the presence of a set served from memory is checked again (at most every {@link PRESENCE_CHECK_MILLIS}). */
export const presenceCheckDue = (nowMillis: number, checkedAtMillis: number): boolean =>
  nowMillis - checkedAtMillis >= PRESENCE_CHECK_MILLIS

/**
 * Whether a read of the store shows that a logout in another process removed
 * the set served from memory: the file is gone (not unreadable, not replaced
 * by other tokens) and the logout recorded this very login (`isLoggedOut`).
 */
export const loggedOutElsewhere = (
  read: Result.Result<TokenSet | undefined, unknown>,
  tokens: TokenSet,
  isLoggedOut: (secrets: ReadonlyArray<Redacted.Redacted<string>>) => boolean
): boolean =>
  read._tag === "Success" && removedByLogout(read.success === undefined, () => isLoggedOut([tokens.refreshToken, tokens.accessToken]))

/** Whether a failed refresh is a refusal for good, noted beside the file so that `status` can say so without a request. */
export const isRefusedForGood = (error: { readonly _tag: string; readonly reason?: string | undefined }): boolean =>
  error._tag === "NotLoggedInError" && error.reason === "refresh-rejected"

/** Whether the background refresher woke much later than it slept (`expectedSleepMillis`): the machine slept, or the clock jumped. */
export const clockJumped = (nowMillis: number, lastWakeMillis: number, expectedSleepMillis: number, checkIntervalMillis: number): boolean =>
  nowMillis - lastWakeMillis > expectedSleepMillis + checkIntervalMillis

/**
 * How long the background refresher sleeps after a check at `nowMillis`:
 * until `tokens` become due (or the proactive backoff ends, whichever is
 * later), at least 1 s and at most the check interval; without tokens, the
 * check interval.
 */
export const backgroundSleepMillis = (
  tokens: TokenSet | undefined,
  windowSeconds: number,
  retryNotBeforeMillis: number,
  nowMillis: number,
  checkIntervalMillis: number
): number => {
  const untilDue = tokens === undefined
    ? checkIntervalMillis
    : Math.max((tokens.expiresAt - refreshThresholdSeconds(tokens, windowSeconds)) * 1000, retryNotBeforeMillis) - nowMillis
  return Math.min(Math.max(untilDue, 1000), checkIntervalMillis)
}

/** The message of a refusal that an interrupted earlier refresh explains. */
export const interruptedMessage = (i: InterruptedRefresh): string => adviseWith(interruptedDetail(i), LOGIN_HINT)

/** {@link interruptedMessage} without the advice. */
const interruptedDetail = (i: InterruptedRefresh): string =>
  `Your Kimi login was revoked: an earlier token refresh (process ${i.pid} on ${i.hostname}, started ${i.startedAt}) ` +
  `was interrupted, or got no answer in time, after Kimi had rotated the refresh token and before the new tokens ` +
  `were saved, so the saved refresh token was already spent. Nothing was deleted`

// ---------------------------------------------------------------------------
// Effects: the pieces `make` wires together, over one shared state.
// ---------------------------------------------------------------------------

/** What one token manager remembers between calls. */
interface ManagerState {
  /** The set served from memory. */
  cached: TokenSet | undefined
  /** Tokens the server issued that could not be saved. While the file still holds the spent refresh token, these win. */
  unsaved: UnsavedTokens | undefined
  /** When this process last refreshed because the API rejected a token (epoch millis). */
  lastForcedMillis: number | undefined
  /** Not before this time (millis) does a proactive refresh try again after a transient fault. */
  retryNotBefore: number
  /** Transient faults of proactive refreshes in a row, for the growing backoff. */
  proactiveFailures: number
  /** When a token served from memory was last seen still stored (millis). */
  presenceCheckedAt: number
}

/** The services, settings and state every piece works with. */
interface Manager {
  readonly store: TokenStoreShape
  readonly oauth: OAuthClientShape
  readonly windowSeconds: number
  readonly attempts: number
  readonly retryPolicy: Pick<RetryPolicy, "baseDelay" | "maxDelay">
  readonly maxRetryMillis: number
  readonly state: ManagerState
  /** Whether a logout recorded any of `secrets` (`logged-out.json` in the storage folder). */
  readonly loggedOut: (secrets: ReadonlyArray<Redacted.Redacted<string>>) => boolean
  /** The stored tokens, or why there are none. */
  readonly load: Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError>
}

/** The outcome of one locked attempt: tokens, or a transient fault with the tokens current at the time. */
type Attempt =
  | { readonly _tag: "Done"; readonly tokens: TokenSet }
  | { readonly _tag: "Transient"; readonly error: TransientError; readonly current: TokenSet }

const done = (tokens: TokenSet): Attempt => ({ _tag: "Done", tokens })

/** The stored tokens of `store`; none, or a damaged file, is {@link NotLoggedInError}. */
const loadTokens = (store: TokenStoreShape): Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> =>
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
      m.state.unsaved = { tokens: refreshed, spent: base.refreshToken }
      m.state.cached = refreshed
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
 * have rotated), any other failure removes it. The error stands.
 */
const afterFailedRequest = (m: Manager, base: TokenSet, prepared: PreparedSave, error: TokenError | InvalidGrantError) =>
  Effect.gen(function*() {
    if (error._tag === "InvalidResponseError" && error.rotatedRefreshToken !== undefined) {
      const kept = new TokenSet({ ...base, refreshToken: error.rotatedRefreshToken })
      const saved = yield* Effect.result(prepared.commit(kept))
      if (saved._tag === "Failure") m.state.unsaved = { tokens: kept, spent: base.refreshToken }
      return yield* Effect.fail(error)
    }
    if (!mayHaveRotated(error)) yield* prepared.abandon
    return yield* Effect.fail(error)
  })

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
const refreshOnce = (m: Manager, base: TokenSet, prepared: PreparedSave) =>
  Effect.gen(function*() {
    yield* prepared.markInFlight
    const result = yield* Effect.result(m.oauth.refreshToken(base.refreshToken, base))
    // Noted before the save: the sent token is spent even when the new ones cannot be stored.
    const spent = spentByRefresh(base.refreshToken, result)
    if (spent !== undefined && m.store.recordSpent) yield* m.store.recordSpent(spent)
    if (result._tag === "Failure") return yield* afterFailedRequest(m, base, prepared, result.failure)
    return yield* saveRefreshed(m, base, result.success, prepared)
  }).pipe(Effect.uninterruptible)

/** The tokens to start from: the file, unless this process holds newer unsaved ones ({@link startingTokens}). */
const current = (m: Manager): Effect.Effect<TokenSet, TokenStoreError | NotLoggedInError> =>
  Effect.gen(function*() {
    const pending = m.state.unsaved
    if (pending === undefined) return yield* m.load
    const fromDisk = yield* Effect.result(m.load)
    switch (startingTokens(pending, fromDisk, m.loggedOut)) {
      case "logged-out":
        // The file is gone by a logout of this login: the tokens held in memory are never saved back.
        m.state.unsaved = undefined
        return yield* Effect.fromResult(fromDisk)
      case "file":
        // Someone wrote other tokens since (a new login): those win.
        m.state.unsaved = undefined
        return yield* Effect.fromResult(fromDisk)
      case "unsaved": {
        // The file still holds the refresh token we spent: ours are the live ones. Save them now if we can.
        const saved = yield* Effect.result(m.store.save(pending.tokens))
        if (saved._tag === "Success") m.state.unsaved = undefined
        else yield* Effect.logWarning("token refresh: the tokens held in memory still cannot be saved")
        return pending.tokens
      }
    }
  })

const revoked = (e: InvalidGrantError) =>
  notLoggedIn("refresh-rejected", `Your Kimi login has expired or was revoked (${e.status})`)

const transientOf = (tokens: TokenSet) => (error: TransientError) => Effect.succeed<Attempt>({ _tag: "Transient", error, current: tokens })

/** A refused refresh of `onDisk`: re-read the file once (a tool that does not use our lock may have rotated the tokens) and act on {@link readRefusal}. */
const afterRefusal = (m: Manager, onDisk: TokenSet, prepared: PreparedSave, nowSeconds: number, e: InvalidGrantError) =>
  Effect.flatMap(m.load, (again): Effect.Effect<Attempt, TokenError> => {
    const reading = readRefusal(onDisk, again, prepared.interrupted, nowSeconds)
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
          Effect.catchTag("InvalidGrantError", (e2: InvalidGrantError) => Effect.fail(revoked(e2))),
          Effect.catchIf(isTransient, transientOf(reading.tokens))
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

/** The refresh of `onDisk` under the lock, its failures read: refused, transient, or an unusable answer that rotated. */
const refreshFrom = (m: Manager, onDisk: TokenSet, prepared: PreparedSave, force: boolean, nowSeconds: number) =>
  refreshOnce(m, onDisk, prepared).pipe(
    Effect.map(done),
    Effect.catchTag("InvalidGrantError", (e: InvalidGrantError) => afterRefusal(m, onDisk, prepared, nowSeconds, e)),
    Effect.catchIf(isTransient, transientOf(onDisk)),
    // The new refresh token is stored (refreshOnce) and the current access token still works: serve it.
    Effect.catchTag("InvalidResponseError", (error: InvalidResponseError) => {
      const kept = servedDespiteBadAnswer(error, onDisk, force, nowSeconds)
      return kept !== undefined ? Effect.succeed(done(kept)) : Effect.fail(error)
    }),
    Effect.tapError((error) => noteRefusal(m.store, error))
  )

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
      const seen = force ? yield* m.store.forcedRefreshSeen(onDisk, now * 1000) : undefined
      if (force && declinesForcedRefresh(onDisk, rejected, now, latest(m.state.lastForcedMillis, seen?.atMillis), seen?.issuedIt)) {
        // The API refused a token issued moments ago: another refresh would not help. The same token back
        // tells the caller (KimiRequest: "Rejected"), and the family is not rotated again.
        yield* Effect.logDebug("token refresh: the API rejected a token issued moments ago; not refreshing again").pipe(
          Effect.annotateLogs({ ageSeconds: Math.round(now - (onDisk.expiresAt - onDisk.expiresIn)) })
        )
        return done(onDisk)
      }
      yield* Effect.logDebug(
        force ? "token refresh: forced (the API rejected the access token)" : "token refresh: due, refreshing"
      ).pipe(Effect.annotateLogs({ remainingSeconds: Math.round(onDisk.remainingSeconds(now)) }))
      const prepared = yield* prepare(m.store)
      const outcome = yield* refreshFrom(m, onDisk, prepared, force, now)
      if (force && outcome._tag === "Done" && outcome.tokens !== onDisk) {
        // Recorded for every process: a rejection of what this refresh issued is not refreshed again for a while.
        m.state.lastForcedMillis = now * 1000
        yield* m.store.noteForcedRefresh(outcome.tokens, m.state.lastForcedMillis)
      }
      if (outcome._tag === "Done" && prepared.interrupted !== undefined) {
        yield* Effect.logInfo("token refresh: an earlier refresh had been interrupted; the login survived it")
      }
      return outcome
    })
  ))

/** A proactive refresh failed for now: serve the still valid `tokens`, and try again after a growing backoff. */
const serveForNow = (m: Manager, error: TransientError, tokens: TokenSet, nowMillis: number) =>
  Effect.gen(function*() {
    const delay = yield* backoffDelay(error, ++m.state.proactiveFailures, m.retryPolicy)
    m.state.retryNotBefore = retryNotBeforeFor(tokens, nowMillis, delay)
    yield* Effect.logWarning("token refresh failed for now; the current token is still valid").pipe(
      Effect.annotateLogs({ error: error._tag, retryInMillis: Math.max(0, m.state.retryNotBefore - nowMillis) })
    )
    return tokens
  })

/**
 * A refresh, retried outside the lock: a proactive one serves the valid
 * token at once on a transient fault; one that must succeed waits (the
 * lock released) within the `maxRetryTime` budget.
 */
const refreshLocked = (m: Manager, rejected: Redacted.Redacted<string> | undefined, force: boolean) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    for (let attempt = 1;; attempt++) {
      const outcome = yield* attemptLocked(m, rejected, force)
      if (outcome._tag === "Done") {
        m.state.retryNotBefore = 0
        m.state.proactiveFailures = 0
        return outcome.tokens
      }
      const { error, current: tokens } = outcome
      const now = yield* Clock.currentTimeMillis
      if (servableMeanwhile(tokens, force, now / 1000)) return yield* serveForNow(m, error, tokens, now)
      if (isRetryAfterTooLong(error, m.maxRetryMillis)) return yield* Effect.fail(retryAfterTooLong(error, m.maxRetryMillis))
      const delay = yield* backoffDelay(error, attempt, m.retryPolicy)
      if (retryGivesUp(attempt, m.attempts, now - start, delay, m.maxRetryMillis)) return yield* Effect.fail(error)
      yield* Effect.logDebug("token refresh: transient fault, retrying (the lock is released meanwhile)").pipe(
        Effect.annotateLogs({ error: error._tag, attempt, delayMillis: delay })
      )
      yield* Effect.sleep(Duration.millis(delay))
    }
  })

/** The set a call can have without a refresh: from memory, freshly loaded, or during a backoff. */
const withoutRefresh = (m: Manager, rejected: Redacted.Redacted<string> | undefined, force: boolean, now: number) =>
  Effect.gen(function*() {
    const cached = m.state.cached
    // Double-checked: a caller ahead of us in the queue may have refreshed already.
    if (cached !== undefined && answersFromMemory(cached, rejected, force, now, m.windowSeconds)) return cached
    if (!force && cached === undefined) {
      const loaded = yield* m.load
      if (!isDue(loaded, now, m.windowSeconds)) {
        m.state.cached = loaded
        return loaded
      }
    }
    // A proactive refresh failed a moment ago: keep serving the valid token until the backoff ends.
    if (servesDuringBackoff(m.state.cached, force, now, m.state.retryNotBefore)) return m.state.cached
    return undefined
  })

/** A refresh whose lock stayed busy: a proactive one serves the valid token and waits a while before queueing again. */
const whileLockBusy = (m: Manager, valid: TokenSet | undefined, force: boolean, now: number) => (e: LockTimeoutError) =>
  servableWhileLockBusy(valid, force, now)
    ? Effect.sync(() => {
      m.state.retryNotBefore = retryNotBeforeFor(valid, now * 1000, BUSY_LOCK_BACKOFF_MILLIS)
      return valid
    }).pipe(Effect.tap(() => Effect.logWarning("token refresh: the lock stayed busy; the current token is still valid")))
    : Effect.fail(e)

/** One call for tokens, one at a time in this process: without a refresh if it can, else refreshed under the lock. */
const serve = (m: Manager, permit: Semaphore.Semaphore, rejected: Redacted.Redacted<string> | undefined, force: boolean) =>
  permit.withPermit(
    Effect.gen(function*() {
      const now = yield* nowSeconds
      const ready = yield* withoutRefresh(m, rejected, force, now)
      if (ready !== undefined) return ready
      const valid = m.state.cached ??
        (force ? undefined : yield* Effect.option(m.load).pipe(Effect.map((o) => o._tag === "Some" ? o.value : undefined)))
      const fresh = yield* refreshLocked(m, rejected, force).pipe(
        Effect.catchTag("LockTimeoutError", whileLockBusy(m, valid, force, now))
      )
      m.state.cached = fresh
      return fresh
    })
  )

/**
 * The cached set, unless a logout in another process removed it: the file
 * is gone and `logged-out.json` records this login. From then on this
 * process serves nothing of it. Read at most every
 * {@link PRESENCE_CHECK_MILLIS}; any other state (a file that cannot be read
 * right now, or was moved aside as damaged) keeps the cached set.
 */
const servedFromMemory = (m: Manager, tokens: TokenSet, nowMillis: number): Effect.Effect<TokenSet, TokenError> => {
  if (!presenceCheckDue(nowMillis, m.state.presenceCheckedAt)) return Effect.succeed(tokens)
  m.state.presenceCheckedAt = nowMillis
  return Effect.flatMap(Effect.result(m.store.load), (r) => {
    if (!loggedOutElsewhere(r, tokens, m.loggedOut)) return Effect.succeed(tokens)
    if (m.state.cached === tokens) m.state.cached = undefined
    m.state.unsaved = undefined
    return Effect.fail(notLoggedIn("no-tokens", `You were logged out of Kimi (no tokens at ${m.store.path} any more)`))
  })
}

/**
 * A new login that could not be saved is still served by this process, as
 * unsaved tokens are after a refresh: they win while the file holds what it
 * held before (the refresh token recorded as `spent`), and are saved at the
 * next refresh if the disk allows it by then.
 */
const keepUnsavedLogin = (m: Manager, tokens: TokenSet) =>
  Effect.flatMap(Effect.option(m.load), (before) =>
    Effect.sync(() => {
      m.state.unsaved = { tokens, spent: before._tag === "Some" ? before.value.refreshToken : Redacted.make("") }
      m.state.cached = tokens
    }))

/** One check of the background refresher: the tokens (refreshed if due), or `undefined` after logging why not. */
const backgroundCheck = (getTokens: Effect.Effect<TokenSet, TokenError>) =>
  getTokens.pipe(
    Effect.map((t): TokenSet | undefined => t),
    Effect.catch((error) =>
      (error._tag === "NotLoggedInError"
        ? Effect.logDebug("background refresh: not logged in")
        : Effect.logWarning("background refresh failed; will try again").pipe(
          Effect.annotateLogs({ error: error._tag })
        )).pipe(Effect.as(undefined))
    )
  )

/** The background refresher: checks, then sleeps until the token is due (at most the check interval), forever. */
const backgroundLoop = (
  m: Manager,
  getTokens: Effect.Effect<TokenSet, TokenError>,
  checkInterval: number,
  sleep: (d: Duration.Duration) => Effect.Effect<void>
): Effect.Effect<never> =>
  Effect.gen(function*() {
    let lastWake = yield* Clock.currentTimeMillis
    let expectedSleep = 0
    while (true) {
      const now = yield* Clock.currentTimeMillis
      if (clockJumped(now, lastWake, expectedSleep, checkInterval)) {
        yield* Effect.logDebug("background refresh: the clock jumped (sleep and wake?); checking the token now")
      }
      const tokens = yield* backgroundCheck(getTokens)
      const after = yield* Clock.currentTimeMillis
      expectedSleep = backgroundSleepMillis(tokens, m.windowSeconds, m.state.retryNotBefore, after, checkInterval)
      lastWake = after
      yield* sleep(Duration.millis(expectedSleep))
    }
  })

/** Builds the token manager. */
export const make = (options: TokenManagerOptions = {}) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const store = yield* TokenStore
    const oauth = yield* OAuthClient
    const permit = yield* Semaphore.make(1)
    const m: Manager = {
      store,
      oauth,
      windowSeconds: Duration.toSeconds(settings.refreshWindow),
      attempts: Math.max(1, options.refreshAttempts ?? 5),
      retryPolicy: { baseDelay: options.retryBaseDelay ?? "500 millis", maxDelay: options.retryMaxDelay ?? "8 seconds" },
      maxRetryMillis: Duration.toMillis(Duration.fromInputUnsafe(options.maxRetryTime ?? "20 seconds")),
      state: { cached: undefined, unsaved: undefined, lastForcedMillis: undefined, retryNotBefore: 0, proactiveFailures: 0, presenceCheckedAt: 0 },
      loggedOut: store.isLoggedOut,
      load: loadTokens(store)
    }
    const checkInterval = Duration.toMillis(Duration.fromInputUnsafe(options.backgroundCheckInterval ?? "60 seconds"))
    const sleep = options.unrefTimers === false ? Effect.sleep : unrefSleep

    const getTokens: Effect.Effect<TokenSet, TokenError> = Effect.suspend(() =>
      Effect.flatMap(Clock.currentTimeMillis, (ms) => {
        const c = m.state.cached
        return c !== undefined && !isDue(c, ms / 1000, m.windowSeconds) ? servedFromMemory(m, c, ms) : serve(m, permit, undefined, false)
      })
    ).pipe(Effect.withSpan("TokenManager.getTokens"))

    const setTokens = (tokens: TokenSet) =>
      permit.withPermit(
        store.withLock(store.save(tokens)).pipe(
          Effect.tap(() => Effect.sync(() => (m.state.cached = tokens))),
          Effect.tapError(() => keepUnsavedLogin(m, tokens))
        )
      )

    const clear = permit.withPermit(
      store.withLock(store.clear).pipe(Effect.tap(() => Effect.sync(() => (m.state.cached = undefined))))
    )

    return {
      getAccessToken: Effect.map(getTokens, (t) => t.accessToken),
      getTokens,
      invalidate: (rejected?: Redacted.Redacted<string>) => serve(m, permit, rejected, true).pipe(Effect.withSpan("TokenManager.invalidate")),
      setTokens,
      clear,
      backgroundRefresh: backgroundLoop(m, getTokens, checkInterval, sleep).pipe(Effect.withSpan("TokenManager.backgroundRefresh"))
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
