/**
 * Keeps an access token valid, for any number of callers in any number of
 * processes, with refresh tokens that rotate on every use.
 *
 * - **Proactive**: a token is refreshed once its remaining lifetime falls
 *   inside the refresh window, before it expires, so requests never carry a
 *   dying token.
 * - **One refresh at a time, everyone waits on it**: in process, the refresh
 *   on its way is one shared result that every caller waits on (a thousand
 *   callers cause one refresh); across processes, the refresh runs inside the
 *   token store's file lock and re-reads the file first; when another process
 *   already rotated the tokens, those are used and no request is made
 *   (replaying a spent refresh token would revoke the whole login).
 * - **Not now**: a refresh that cannot finish yet (a transient fault, a busy
 *   lock, an unusable answer, an answer still on its way, an unknown
 *   outcome) is one outcome with one serving rule: a proactive call serves
 *   the still-valid token (more than 5 s left) and tries again after a
 *   backoff; a call that must succeed (expired token, or `invalidate`)
 *   waits, retrying transient faults on a schedule within `maxRetryTime`
 *   (20 s), the lock released during every wait.
 * - **A late answer** is awaited, not dropped: a sent refresh waits for
 *   `refreshAnswerTimeout` (5 minutes by default), because Kimi rotates on
 *   receipt and the answer is the only copy of the new refresh token. The
 *   caller that started a proactive refresh waits at most the request
 *   timeout and is then served the valid token while the refresh finishes in
 *   the background; waiters in other processes outwait it on the lock. An
 *   interrupted caller (Ctrl-C, an abort, a disposed runtime) still waits for
 *   the answer, at most the request timeout, so it is saved. When the outcome
 *   stays unknown, nothing is replayed blindly: see `./Refresh.ts`.
 * - **A refused refresh token** (`invalid_grant`) is never sent again by this
 *   process; the file is re-read once first (a tool that does not take our
 *   lock may have rotated it). Nothing is ever deleted for a failure.
 * - **A token the API rejects** is refreshed once; a fresh one rejected again
 *   within a minute of a forced refresh (in any process) is not.
 * - **Disk first**: space for the new token file is reserved before the
 *   refresh token is spent; a save that still fails keeps the new tokens in
 *   memory (served, saved at the next refresh).
 *
 * Decisions are named pure functions in `./TokenManagerDecisions.ts`, tested
 * as tables; the locked refresh step is `./Refresh.ts`; state is one `Ref`.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import { advised, isTransient, type LockTimeoutError, NotLoggedInError, type TokenStoreError } from "../Errors.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { OAuthClient } from "../oauth/OAuthClient.js"
import { backoffDelay } from "../oauth/Retry.js"
import { TokenStore } from "../storage/TokenStore.js"
import type { TokenSet } from "./TokenSet.js"
import {
  initialState,
  isNotNowError,
  loadTokens,
  type Manager,
  refreshWithRetries,
  setCached,
  type TokenError,
  update
} from "./Refresh.js"
import {
  answersFromMemory,
  backgroundSleepMillis,
  BUSY_LOCK_BACKOFF_MILLIS,
  clockJumped,
  isDue,
  loggedOutElsewhere,
  notNow,
  type NotNow,
  ON_THE_WIRE_RECHECK_MILLIS,
  onTheWireElsewhere,
  presenceCheckDue,
  replacedSince,
  retryAt,
  servedNotNow,
  servesMeanwhile,
  HeldBackRefreshTokens,
  stillNotNow
} from "./TokenManagerDecisions.js"

export type { TokenError } from "./Refresh.js"
export { HeldBackRefreshTokens } from "./TokenManagerDecisions.js"

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
  /**
   * The refresh tokens not to send again (refused, or of an unknown outcome),
   * shared by managers that stand for the same login in one process (the
   * OpenCode plugin rebuilds its runtime). Default: one per manager.
   */
  readonly heldBackRefreshTokens?: HeldBackRefreshTokens | undefined
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

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => ms / 1000)

const unrefSleep = (duration: Duration.Duration): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), Duration.toMillis(duration))
    ;(timer as { unref?: () => void }).unref?.()
    return Effect.sync(() => clearTimeout(timer))
  })

/** The manager, its in-process permit (one decision at a time) and the scope its refreshes run in. */
interface Wired extends Manager {
  readonly permit: Semaphore.Semaphore
  readonly scope: Scope.Scope
}

/**
 * Serves a "not now" by the one serving rule ({@link servedNotNow}): the set
 * in hand, with the next try after its delay (a backoff growing with each
 * transient fault in a row); else its error stands.
 */
const serveNotNow = (m: Manager, n: NotNow<TokenError>, force: boolean): Effect.Effect<TokenSet, TokenError> =>
  Effect.gen(function*() {
    const nowMillis = yield* Clock.currentTimeMillis
    const served = servedNotNow(n, force, nowMillis / 1000)
    if (served === undefined) return yield* Effect.fail(n.error)
    const failures = (yield* Ref.get(m.state)).proactiveFailures + 1
    const delay = isTransient(n.error) ? yield* backoffDelay(n.error, failures, m.retryPolicy) : n.retryInMillis
    yield* update(m, () => ({ proactiveFailures: failures, retryAtMillis: retryAt(served, nowMillis, delay), cached: served }))
    yield* Effect.logWarning("token refresh: not now; the current token is still valid and served meanwhile").pipe(
      Effect.annotateLogs({ error: n.error._tag, retryInMillis: delay })
    )
    return served
  })

/** One refresh, run in the manager's scope: its tokens (cached), or "not now" served by the rule, or its error. */
const runRefresh = (m: Manager, rejected: Redacted.Redacted<string> | undefined, force: boolean, valid: TokenSet | undefined) =>
  refreshWithRetries(m, rejected, force).pipe(
    Effect.flatMap((outcome): Effect.Effect<TokenSet, TokenError> =>
      outcome._tag === "Done"
        ? Effect.as(update(m, () => ({ cached: outcome.tokens, retryAtMillis: 0, proactiveFailures: 0 })), outcome.tokens)
        : serveNotNow(m, outcome, force)
    ),
    Effect.catchTag("LockTimeoutError", (e) => serveNotNow(m, notNow(e, valid, BUSY_LOCK_BACKOFF_MILLIS), force))
  )

/** The set a call can have without a refresh: from memory, freshly loaded, or while an earlier "not now" stands. */
const withoutRefresh = (m: Manager, rejected: Redacted.Redacted<string> | undefined, force: boolean, now: number) =>
  Effect.gen(function*() {
    const { cached, retryAtMillis } = yield* Ref.get(m.state)
    // Double-checked: a caller ahead of us may have refreshed already.
    if (cached !== undefined && answersFromMemory(cached, rejected, force, now, m.windowSeconds)) return cached
    if (!force && cached === undefined) {
      const loaded = yield* m.load
      if (!isDue(loaded, now, m.windowSeconds)) {
        yield* setCached(m, loaded)
        return loaded
      }
    }
    if (stillNotNow(cached, force, now, retryAtMillis)) return cached
    return undefined
  })

/**
 * Whether a proactive call serves `valid` now because another process has a
 * refresh on the wire ({@link onTheWireElsewhere}): not now, look again after
 * {@link ON_THE_WIRE_RECHECK_MILLIS}; that process's answer reaches the file.
 */
const onTheWireNow = (m: Manager, valid: TokenSet | undefined, force: boolean) =>
  Effect.gen(function*() {
    const nowMillis = yield* Clock.currentTimeMillis
    if (!servesMeanwhile(valid, force, nowMillis / 1000)) return false
    const marker = yield* m.store.readInFlight
    if (!onTheWireElsewhere(marker, nowMillis, m.answerMillis, { pid: process.pid, hostname: os.hostname() })) return false
    yield* update(m, () => ({ retryAtMillis: retryAt(valid, nowMillis, ON_THE_WIRE_RECHECK_MILLIS), cached: valid }))
    yield* Effect.logDebug("token refresh: another process has a refresh on the wire; serving the valid token meanwhile")
    return true
  })

/** Where a call stands: tokens at hand, or a refresh to wait on (`started`: this call started it). */
type Step =
  | { readonly _tag: "Ready"; readonly tokens: TokenSet }
  | {
    readonly _tag: "Wait"
    readonly refresh: Deferred.Deferred<TokenSet, TokenError>
    readonly valid: TokenSet | undefined
    readonly started: boolean
  }

/** Under the permit: tokens without a refresh, else the refresh on its way, else a new one started in the manager's scope. */
const decide = (m: Wired, rejected: Redacted.Redacted<string> | undefined, force: boolean): Effect.Effect<Step, TokenError> =>
  m.permit.withPermit(Effect.gen(function*() {
    const ready = yield* withoutRefresh(m, rejected, force, yield* nowSeconds)
    if (ready !== undefined) return { _tag: "Ready", tokens: ready } as const
    const state = yield* Ref.get(m.state)
    const valid = state.cached ??
      (force ? undefined : yield* Effect.option(m.load).pipe(Effect.map((o) => o._tag === "Some" ? o.value : undefined)))
    if (state.inFlight !== undefined) return { _tag: "Wait", refresh: state.inFlight, valid, started: false } as const
    if (yield* onTheWireNow(m, valid, force)) return { _tag: "Ready", tokens: valid! } as const
    // A call cancelled before it got here (an aborted signal) starts no refresh: its interruption lands now.
    yield* Effect.yieldNow
    const refresh = yield* Deferred.make<TokenSet, TokenError>()
    yield* update(m, () => ({ inFlight: refresh }))
    yield* runRefresh(m, rejected, force, valid).pipe(
      // Whatever its end (an interruption too, so no waiter hangs): no longer in flight, then its waiters resume.
      Effect.onExit((exit) =>
        Effect.andThen(update(m, (s) => s.inFlight === refresh ? { inFlight: undefined } : {}), Deferred.done(refresh, exit))
      ),
      Effect.forkIn(m.scope, { startImmediately: true })
    )
    return { _tag: "Wait", refresh, valid, started: true } as const
  }))

/**
 * Waits on the refresh on its way. A proactive call with a servable token is
 * served it meanwhile (at once when another call started the refresh; after
 * at most the request timeout when this one did). Interrupted, it still waits
 * for the refresh at most the request timeout, so an answer on the wire is
 * saved before the caller ends.
 */
const awaitRefresh = (m: Manager, step: Extract<Step, { _tag: "Wait" }>, force: boolean): Effect.Effect<TokenSet, TokenError> =>
  Effect.gen(function*() {
    const patiently = <A, E>(wait: Effect.Effect<A, E>) =>
      wait.pipe(Effect.onInterrupt(() => Deferred.await(step.refresh).pipe(Effect.timeoutOption(m.requestTimeout), Effect.ignore)))
    if (!servesMeanwhile(step.valid, force, yield* nowSeconds)) return yield* patiently(Deferred.await(step.refresh))
    if (!step.started) return step.valid
    const answer = yield* patiently(Deferred.await(step.refresh).pipe(Effect.timeoutOption(m.requestTimeout))).pipe(Effect.result)
    if (answer._tag === "Success") return answer.success._tag === "Some" ? answer.success.value : step.valid
    return isNotNowError(answer.failure) ? step.valid : yield* Effect.fail(answer.failure)
  })

/** One call for tokens: without a refresh if it can, else waiting on the one refresh (a forced call decides again after a refresh it did not start). */
const serve = (m: Wired, rejected: Redacted.Redacted<string> | undefined, force: boolean): Effect.Effect<TokenSet, TokenError> =>
  Effect.gen(function*() {
    for (let round = 1;; round++) {
      const step = yield* decide(m, rejected, force)
      if (step._tag === "Ready") return step.tokens
      const tokens = yield* awaitRefresh(m, step, force)
      if (step.started || !force || round >= 3 || replacedSince(tokens, rejected)) return tokens
    }
  })

/**
 * The cached set, unless a logout in another process removed it: the file
 * is gone and `logged-out.json` records this login. From then on this
 * process serves nothing of it. Read at most every `PRESENCE_CHECK_MILLIS`;
 * any other state (a file that cannot be read right now, or was moved aside
 * as damaged) keeps the cached set.
 */
const servedFromMemory = (m: Manager, tokens: TokenSet, nowMillis: number): Effect.Effect<TokenSet, TokenError> =>
  Effect.gen(function*() {
    if (!presenceCheckDue(nowMillis, (yield* Ref.get(m.state)).presenceCheckedAt)) return tokens
    yield* update(m, () => ({ presenceCheckedAt: nowMillis }))
    const read = yield* Effect.result(m.store.load)
    if (!loggedOutElsewhere(read, tokens, m.loggedOut)) return tokens
    yield* update(m, (s) => ({ cached: s.cached === tokens ? undefined : s.cached, unsaved: undefined }))
    return yield* new NotLoggedInError({
      reason: "no-tokens",
      ...advised(`You were logged out of Kimi (no tokens at ${m.store.path} any more)`, { _tag: "LogIn" })
    })
  })

/**
 * A new login that could not be saved is still served by this process, as
 * unsaved tokens are after a refresh: they win while the file holds what it
 * held before (the refresh token recorded as `spent`), and are saved at the
 * next refresh if the disk allows it by then.
 */
const keepUnsavedLogin = (m: Manager, tokens: TokenSet) =>
  Effect.flatMap(Effect.option(m.load), (before) =>
    setCached(m, tokens, { tokens, spent: before._tag === "Some" ? before.value.refreshToken : Redacted.make("") }))

/** Waits for the refresh on its way, if any (its outcome is its callers'). */
const settled = (m: Manager) =>
  Effect.flatMap(Ref.get(m.state), (s) => s.inFlight === undefined ? Effect.void : Effect.ignore(Deferred.await(s.inFlight)))

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
      const { retryAtMillis } = yield* Ref.get(m.state)
      expectedSleep = backgroundSleepMillis(tokens, m.windowSeconds, retryAtMillis, after, checkInterval)
      lastWake = after
      yield* sleep(Duration.millis(expectedSleep))
    }
  })

/** The manager's services, settings and state, from the environment and `options`. */
const wire = (options: TokenManagerOptions) =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const store = yield* TokenStore
    const m: Wired = {
      store,
      oauth: yield* OAuthClient,
      windowSeconds: Duration.toSeconds(settings.refreshWindow),
      attempts: Math.max(1, options.refreshAttempts ?? 5),
      retryPolicy: { baseDelay: options.retryBaseDelay ?? "500 millis", maxDelay: options.retryMaxDelay ?? "8 seconds" },
      maxRetryMillis: Duration.toMillis(Duration.fromInputUnsafe(options.maxRetryTime ?? "20 seconds")),
      requestTimeout: settings.requestTimeout,
      answerMillis: Duration.toMillis(settings.refreshAnswerTimeout),
      state: yield* Ref.make(initialState),
      spent: options.heldBackRefreshTokens ?? new HeldBackRefreshTokens(),
      loggedOut: store.isLoggedOut,
      load: loadTokens(store),
      permit: yield* Semaphore.make(1),
      scope: yield* Effect.scope
    }
    return m
  })

/** Builds the token manager; its refreshes run in the scope it is built in (closing it waits for an answer on the wire). */
export const make = (options: TokenManagerOptions = {}) =>
  Effect.gen(function*() {
    const m = yield* wire(options)
    const checkInterval = Duration.toMillis(Duration.fromInputUnsafe(options.backgroundCheckInterval ?? "60 seconds"))
    const sleep = options.unrefTimers === false ? Effect.sleep : unrefSleep

    const getTokens: Effect.Effect<TokenSet, TokenError> = Effect.flatMap(Clock.currentTimeMillis, (ms) =>
      Effect.flatMap(Ref.get(m.state), ({ cached }) =>
        cached !== undefined && !isDue(cached, ms / 1000, m.windowSeconds) ? servedFromMemory(m, cached, ms) : serve(m, undefined, false))
    ).pipe(Effect.withSpan("TokenManager.getTokens"))

    const setTokens = (tokens: TokenSet) =>
      Effect.andThen(
        settled(m),
        m.permit.withPermit(
          m.store.withLock(m.store.save(tokens)).pipe(
            Effect.tap(() => setCached(m, tokens)),
            Effect.tapError(() => keepUnsavedLogin(m, tokens))
          )
        )
      )

    const clear = Effect.andThen(
      settled(m),
      m.permit.withPermit(m.store.withLock(m.store.clear).pipe(Effect.tap(() => setCached(m, undefined))))
    )

    return {
      getAccessToken: Effect.map(getTokens, (t) => t.accessToken),
      getTokens,
      invalidate: (rejected?: Redacted.Redacted<string>) => serve(m, rejected, true).pipe(Effect.withSpan("TokenManager.invalidate")),
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
