/**
 * The token manager's decisions: named pure functions of tokens, times and
 * errors, each tested as a table (test/tokens/TokenManager.decisions.test.ts).
 * The effects that act on them live in `./Refresh.ts` (the locked refresh)
 * and `./TokenManager.ts` (the service).
 *
 * One outcome says "not now" ({@link NotNow}): a refresh that cannot finish
 * yet (a transient fault, a busy lock, an unusable answer, a refresh on the
 * wire whose answer has not come, or one whose outcome is unknown) carries
 * its error, when to try again, and the tokens in hand. One rule decides
 * whether those tokens are served meanwhile ({@link servesMeanwhile}).
 *
 * Internal: not exported from the package's public entries.
 *
 * @since 0.2.0
 */
import * as Redacted from "effect/Redacted"
import type * as Result from "effect/Result"
import {
  adviseWith,
  answerMayBeLost,
  type InvalidResponseError,
  isTransient,
  LOGIN_HINT,
  NetworkError,
  type NotLoggedInError,
  type TokenStoreError
} from "../Errors.js"
import type { InterruptedRefresh } from "../storage/TokenStore.js"
import { fingerprint, removedByLogout } from "../storage/Notes.js"
import { TokenSet } from "./TokenSet.js"
import { isDueAt, refreshThresholdSeconds as thresholdForLifetime } from "../light/TokenValidation.js"

const sameSecret = (a: Redacted.Redacted<string>, b: Redacted.Redacted<string>) => Redacted.value(a) === Redacted.value(b)

// ---------------------------------------------------------------------------
// When a token is due

/**
 * Seconds of remaining lifetime below which `tokens` are due for refresh: the
 * larger of the window and half the lifetime (Kimi's own rule), but never
 * more than three quarters of the lifetime (`TokenValidation`'s
 * `refreshThresholdSeconds`, which takes a lifetime instead of a set).
 */
export const refreshThresholdOf = (tokens: TokenSet, windowSeconds: number): number =>
  thresholdForLifetime(tokens.expiresIn, windowSeconds)

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

/** Whether the set in hand no longer carries the `rejected` access token: someone (a caller ahead of us, another process) replaced it since. */
export const replacedSince = (tokens: TokenSet, rejected: Redacted.Redacted<string> | undefined): boolean =>
  rejected !== undefined && !sameSecret(tokens.accessToken, rejected)

/**
 * Whether the set held in memory answers a call without a refresh: a
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
  answersFromMemory(onDisk, rejected, force, nowSeconds, windowSeconds) && (!force || onDisk.remainingSeconds(nowSeconds) > 0)

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

// ---------------------------------------------------------------------------
// Not now: one outcome, one serving rule

/** A token with more than this many seconds left may still be served while its refresh fails or waits. */
export const SERVABLE_MARGIN_SECONDS = 5

/** After a lock wait that timed out, proactive refreshes wait this long before queueing for the lock again. */
export const BUSY_LOCK_BACKOFF_MILLIS = 10_000

/**
 * A refresh that cannot finish now: `error` says why, `retryInMillis` when to
 * try again, and `current` is the set in hand (served meanwhile when
 * {@link servesMeanwhile} allows it; otherwise `error` is the caller's).
 */
export interface NotNow<E = unknown> {
  readonly _tag: "NotNow"
  readonly error: E
  readonly retryInMillis: number
  readonly current: TokenSet | undefined
}

/** A {@link NotNow}. */
export const notNow = <E>(error: E, current: TokenSet | undefined, retryInMillis = 0): NotNow<E> => ({
  _tag: "NotNow",
  error,
  retryInMillis,
  current
})

/**
 * The one serving rule: while a refresh cannot finish now, `tokens` are
 * served instead of failing only for a proactive call (never one forced by
 * the API refusing the token), and only while they have more than
 * {@link SERVABLE_MARGIN_SECONDS} to live.
 */
export const servesMeanwhile = (tokens: TokenSet | undefined, force: boolean, nowSeconds: number): tokens is TokenSet =>
  !force && tokens !== undefined && tokens.remainingSeconds(nowSeconds) > SERVABLE_MARGIN_SECONDS

/** What a {@link NotNow} serves to a call (`force`) at `nowSeconds`: its tokens by {@link servesMeanwhile}, else `undefined` (its error stands). */
export const servedNotNow = (n: NotNow, force: boolean, nowSeconds: number): TokenSet | undefined =>
  servesMeanwhile(n.current, force, nowSeconds) ? n.current : undefined

/**
 * When a refresh answered "not now" may try again: after `delayMillis`, but no
 * later than {@link SERVABLE_MARGIN_SECONDS} before the served token expires.
 */
export const retryAt = (tokens: TokenSet, nowMillis: number, delayMillis: number): number =>
  Math.min(nowMillis + delayMillis, (tokens.expiresAt - SERVABLE_MARGIN_SECONDS) * 1000)

/**
 * Whether an earlier "not now" still stands for a proactive call: its retry
 * time (`retryAtMillis`) has not come, and `cached` is still served meanwhile.
 */
export const stillNotNow = (
  cached: TokenSet | undefined,
  force: boolean,
  nowSeconds: number,
  retryAtMillis: number
): cached is TokenSet => nowSeconds * 1000 < retryAtMillis && servesMeanwhile(cached, force, nowSeconds)

/** After seeing another process's refresh on the wire, a proactive call looks again after this long. */
export const ON_THE_WIRE_RECHECK_MILLIS = 5_000

/**
 * Whether the "refresh in flight" marker says another process has a refresh
 * on the wire now: written by another process (not `self`), less than
 * `boundMillis` (the answer bound) before `nowMillis`; an older one is a
 * leftover. A proactive call with a servable token then serves it instead of
 * queueing for the lock behind a late answer. A marker from the future by
 * more than a minute (clocks that disagree) counts as a leftover.
 */
export const onTheWireElsewhere = (
  marker: InterruptedRefresh | undefined,
  nowMillis: number,
  boundMillis: number,
  self: { readonly pid: number; readonly hostname: string }
): boolean => {
  if (marker === undefined || (marker.pid === self.pid && marker.hostname === self.hostname)) return false
  const age = nowMillis - Date.parse(marker.startedAt)
  return Number.isFinite(age) && age > -60_000 && age < boundMillis
}

/**
 * The "not now" of an answer that rotated the refresh token but sent an
 * unusable access token: the current access token with the new refresh token
 * (still due, so the next call refreshes with it), retried at once.
 * `undefined` when nothing was rotated: the error stands.
 */
export const badAnswerNotNow = (error: InvalidResponseError, onDisk: TokenSet): NotNow<InvalidResponseError> | undefined =>
  error.rotatedRefreshToken !== undefined
    ? notNow(error, new TokenSet({ ...onDisk, refreshToken: error.rotatedRefreshToken }))
    : undefined

// ---------------------------------------------------------------------------
// Retrying, and a refresh whose outcome is unknown

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
 * Whether a failed try of a refresh that must succeed is tried again (after
 * a backoff, the lock released): a transient fault that proves nothing was
 * sent or rotated. A refresh whose outcome is unknown ({@link mayHaveRotated})
 * is never replayed blindly.
 */
export const retriesAfter = (error: { readonly _tag: string; readonly reason?: string | undefined }): boolean =>
  isTransient(error) && !mayHaveRotated(error)

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
 * The error of a refresh whose outcome is unknown: it was sent, and no answer
 * came within the bound (or the connection broke after sending). Kimi may
 * have rotated the refresh token on receipt; if so, the new one was only in
 * the lost answer. This process does not send that refresh token again; the
 * in-flight marker stays beside the token file. `what` is the first sentence
 * of the network error (what happened), or says it was sent earlier.
 */
export const refreshOutcomeUnknown = (url: string, what: string): NetworkError =>
  new NetworkError({
    url,
    reason: "outcome-unknown",
    message: `${what} The token refresh was sent, so its outcome is unknown: Kimi may have rotated the refresh token, ` +
      `and the new one was only in that answer. This process will not send the saved one again; nothing was ` +
      `deleted. Run \`kimi-auth token\` once the connection is back: its one try either succeeds (the refresh ` +
      `never arrived) or shows the login is gone, and then ${LOGIN_HINT}.`
  })

/** The first sentence of a network error's message: what happened, without its advice. */
export const whatHappened = (message: string): string => {
  const end = message.indexOf(". ")
  return end === -1 ? message : message.slice(0, end + 1)
}

/** Whether `error` is a {@link refreshOutcomeUnknown} error. */
export const isOutcomeUnknown = (error: { readonly _tag: string; readonly reason?: string | undefined }): boolean =>
  error._tag === "NetworkError" && error.reason === "outcome-unknown"

/**
 * Why this process will not send a refresh token again: Kimi refused it for
 * good (`invalid_grant`), or a refresh with it has an unknown outcome.
 */
export type SpentReason = "refused" | "outcome-unknown"

/**
 * The refresh tokens this process (or this OpenCode provider, across its
 * runtimes) will not send again, by fingerprint: after `invalid_grant` a
 * replay is pointless and, for Kimi, a reuse of a spent token; after an
 * unknown outcome it would be a blind replay. Kept in memory only.
 */
export class HeldBackRefreshTokens {
  private readonly spent = new Map<string, SpentReason>()
  /** Records `token` as not to be sent again. */
  note(token: Redacted.Redacted<string>, reason: SpentReason): void {
    this.spent.set(fingerprint(Redacted.value(token)), reason)
  }
  /** Why `token` is not sent again, or `undefined` when it may be. */
  reasonFor(token: Redacted.Redacted<string>): SpentReason | undefined {
    return this.spent.get(fingerprint(Redacted.value(token)))
  }
}

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
export const readRefusedRefresh = (
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
    : Math.max((tokens.expiresAt - refreshThresholdOf(tokens, windowSeconds)) * 1000, retryNotBeforeMillis) - nowMillis
  return Math.min(Math.max(untilDue, 1000), checkIntervalMillis)
}

/** The message of a refusal that an interrupted earlier refresh explains. */
export const interruptedMessage = (i: InterruptedRefresh): string => adviseWith(interruptedDetail(i), LOGIN_HINT)

/** {@link interruptedMessage} without the advice. */
export const interruptedDetail = (i: InterruptedRefresh): string =>
  `Your Kimi login was revoked: an earlier token refresh (process ${i.pid} on ${i.hostname}, started ${i.startedAt}) ` +
  `was interrupted, or got no answer in time, after Kimi had rotated the refresh token and before the new tokens ` +
  `were saved, so the saved refresh token was already spent. Nothing was deleted`

