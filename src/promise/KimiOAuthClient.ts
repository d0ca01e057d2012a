/**
 * `KimiOAuthClient`: the promise facade for plain TypeScript users who never
 * touch Effect. A thin edge over the same Effect core as the CLI and the
 * OpenCode plugin: one managed runtime per client, every call translated to a
 * promise, every typed failure to a {@link KimiAuthError} with a stable `code`
 * and the typed Effect error as `cause`.
 *
 * ```ts
 * const client = new KimiOAuthClient()
 * const session = await client.authorize()
 * console.log(`Open ${session.verificationUriComplete ?? session.verificationUri} and enter ${session.userCode}`)
 * await session.waitForCompletion()
 * const token = await client.getValidAccessToken()
 * await client.dispose()
 * ```
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { DeviceFlow } from "../oauth/DeviceFlow.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { isTransient } from "../Errors.js"
import type { NextStep } from "../light/NextStep.js"
import { issuerFor, KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { makeKimiFetch } from "../request/AuthorizingFetch.js"
import { authErrorFailure, makeManagedTokenSource } from "../request/ManagedTokenSource.js"
import { gaveUp } from "../oauth/Login.js"
import { checkCanStoreLogin } from "../storage/LoginStorage.js"
import { type AccountStatus, listAccounts } from "../accounts/Accounts.js"
import { storeAsAccount } from "../accounts/AccountLogin.js"
import { loginStatus } from "../oauth/LoginStatus.js"
import type { KimiAuthServices } from "../KimiAuth.js"
import { type EdgeRuntime, makeEdgeRuntime } from "../edge/Runtime.js"
import { KimiApi } from "../api/KimiApi.js"
import type { KimiRegion } from "../light/Region.js"
import { TokenManager } from "../tokens/TokenManager.js"
import { TokenStore } from "../storage/TokenStore.js"
import type { KimiUsage } from "../api/UsageModel.js"
import type { OAuthConfig } from "./Options.js"

export type { DurationInput, DurationUnit, OAuthConfig } from "./Options.js"

/** Stable error codes of {@link KimiAuthError}. */
export type KimiAuthErrorCode =
  | "ACCESS_DENIED"
  | "EXPIRED_TOKEN"
  | "NETWORK_ERROR"
  | "SERVER_ERROR"
  | "INVALID_RESPONSE"
  | "OAUTH_ERROR"
  | "NOT_LOGGED_IN"
  | "STORAGE_ERROR"
  | "LOCK_TIMEOUT"
  | "CONFIG_ERROR"
  | "QUOTA_EXCEEDED"
  | "RATE_LIMITED"
  | "API_ERROR"
  | "ABORTED"
  | "DISPOSED"
  | "UNEXPECTED"

const CODES: Record<string, KimiAuthErrorCode> = {
  AccessDeniedError: "ACCESS_DENIED",
  DeviceCodeExpiredError: "EXPIRED_TOKEN",
  NetworkError: "NETWORK_ERROR",
  ServerError: "SERVER_ERROR",
  InvalidResponseError: "INVALID_RESPONSE",
  OAuthError: "OAUTH_ERROR",
  NotLoggedInError: "NOT_LOGGED_IN",
  InvalidGrantError: "NOT_LOGGED_IN",
  CorruptTokenFileError: "NOT_LOGGED_IN",
  TokenStoreError: "STORAGE_ERROR",
  LockTimeoutError: "LOCK_TIMEOUT",
  ConfigError: "CONFIG_ERROR",
  QuotaExceededError: "QUOTA_EXCEEDED",
  RateLimitedError: "RATE_LIMITED",
  KimiApiError: "API_ERROR"
}

/**
 * The brand every {@link KimiAuthError} carries, registered globally with
 * `Symbol.for`: the same symbol in every copy of this package (the bundles and
 * the tsc build behind `./effect` each have their own class).
 */
const KimiAuthErrorBrand: unique symbol = Symbol.for("opencode-kimi-auth/KimiAuthError") as never

/**
 * Every failure of the facade. `code` is stable across versions; `cause` is
 * the typed Effect error (for `ABORTED`, the abort reason). The message says
 * what to do next and never holds a token.
 *
 * The package ships more than one build (the self-contained bundles behind the
 * root and `./server`, the tsc output behind `./effect`), each with its own copy
 * of this class. Recognise an error from any of them with
 * {@link KimiAuthError.is}; `instanceof KimiAuthError` answers the same (it
 * checks the brand, not the prototype chain).
 */
export class KimiAuthError extends Error {
  override readonly name = "KimiAuthError"
  /** The cross-build brand; see {@link KimiAuthError.is}. */
  readonly [KimiAuthErrorBrand] = true
  /**
   * What to run next, as data, when the typed error carries it (a login
   * again, at which region; a file to move away first): render it in your
   * host's words instead of parsing `message`.
   */
  readonly hint: NextStep | undefined
  constructor(readonly code: KimiAuthErrorCode, message: string, options?: { readonly cause?: unknown }) {
    super(message, options)
    this.hint = (options?.cause as { readonly hint?: NextStep } | undefined)?.hint
  }

  /** Whether `u` is a `KimiAuthError` from any build or copy of this package. */
  static is(u: unknown): u is KimiAuthError {
    return typeof u === "object" && u !== null && (u as { readonly [KimiAuthErrorBrand]?: unknown })[KimiAuthErrorBrand] === true
  }

  /** `e instanceof KimiAuthError` checks the brand, so it holds across builds too. */
  static override [Symbol.hasInstance](u: unknown): boolean {
    return KimiAuthError.is(u)
  }
}

/** The state of the stored login. Holds no secret. */
export interface KimiAuthStatus {
  readonly loggedIn: boolean
  /** When the access token expires. */
  readonly expiresAt: Date | undefined
  /** Whether the next `getValidAccessToken` will refresh first. */
  readonly refreshDue: boolean
  readonly deviceId: string
  readonly tokenFilePath: string
  /** The region of the stored login (the configured one when not logged in). */
  readonly region: KimiRegion
  /** The OAuth host refreshes go to. */
  readonly oauthHost: string
  /** The Kimi API base this login's requests go to (its region's, unless pinned). */
  readonly apiBaseUrl: string
}

/** What a completed login leaves behind. Holds no secret. */
export interface LoginResult {
  readonly expiresAt: Date
  readonly tokenFilePath: string
  /** The account logged in, when the login went to the storage folder's accounts. */
  readonly account?: KimiAccount | undefined
  /** True when it replaced the login of an account of the same Kimi user; false when it added an account. */
  readonly replaced?: boolean | undefined
}

/** A Kimi account logged in on this machine (`client.accounts()`). Holds no secret. */
export interface KimiAccount {
  /** What a person recognises: nickname or email, then the region ("Ada (ada@example.com), mainland-cn"). */
  readonly label: string
  /** Kimi's user id; `undefined` until Kimi was asked (an account from before accounts existed). */
  readonly userId: string | undefined
  readonly nickname: string | undefined
  readonly email: string | undefined
  readonly region: KimiRegion
  /** The active account of its region: what a client, a command or OpenCode's provider of that region uses by default. */
  readonly active: boolean
  /** The account last logged in or switched to: used when neither an account nor a region is named. */
  readonly current: boolean
  /** The default account (`oauth.json`). */
  readonly isDefault: boolean
  /** `valid`, `expired` (refreshed on next use), `none` (no login), `damaged` (unreadable token file). */
  readonly state: "valid" | "expired" | "none" | "damaged"
  readonly expiresAt: Date | undefined
  readonly tokenFilePath: string
}

/** A started device authorization: show the code, then wait. Polling already runs. */
export interface AuthorizationSession {
  /** Where the user goes. */
  readonly verificationUri: string
  /** The same page with the code filled in, when the server provides one. Show `userCode` anyway. */
  readonly verificationUriComplete: string | undefined
  /** The code the user confirms on the page. */
  readonly userCode: string
  /** Seconds until the code expires. */
  readonly expiresIn: number
  /** When the code expires. */
  readonly expiresAt: Date
  /** Seconds between polls. */
  readonly interval: number
  /** Resolves when the user approved and the tokens are stored; rejects with a {@link KimiAuthError}. */
  readonly waitForCompletion: (options?: { readonly signal?: AbortSignal | undefined }) => Promise<LoginResult>
  /** Stops polling; `waitForCompletion` rejects with code `ABORTED`. */
  readonly cancel: () => void
}

/** Per-call options. */
export interface CallOptions {
  /** Aborting stops the call (and its polling or retries) at once; it rejects with code `ABORTED`. */
  readonly signal?: AbortSignal | undefined
}

const toKimiAuthError = (cause: Cause.Cause<unknown>, signal?: AbortSignal): KimiAuthError => {
  const failure = Cause.findErrorOption(cause)
  if (Option.isSome(failure)) {
    const e = failure.value as { readonly _tag?: string; readonly message?: string }
    const code = (e._tag && CODES[e._tag]) || "UNEXPECTED"
    return new KimiAuthError(code, e.message || `Unexpected failure (${e._tag ?? "unknown"})`, { cause: e })
  }
  if (Cause.hasInterruptsOnly(cause)) {
    return new KimiAuthError("ABORTED", "The operation was cancelled.", { cause: signal?.reason })
  }
  const defect = Cause.squash(cause)
  return new KimiAuthError(
    "UNEXPECTED",
    `Unexpected internal failure: ${defect instanceof Error ? defect.message : String(defect)}. Please report it.`,
    { cause: defect }
  )
}

/** An account's status in the facade's plain terms. */
const toKimiAccount = (s: AccountStatus): KimiAccount => ({
  label: s.label,
  userId: s.account.userId,
  nickname: s.account.nickname,
  email: s.account.email,
  region: s.account.region,
  active: s.active,
  current: s.current,
  isDefault: s.account.isDefault,
  state: s.state,
  expiresAt: s.expiresAt === undefined ? undefined : new Date(s.expiresAt * 1000),
  tokenFilePath: s.path
})

/** The promise facade over the Effect core. */
export class KimiOAuthClient {
  #runtime: EdgeRuntime
  readonly #options: Omit<OAuthConfig, "clientSecret" | "scopes">
  #disposed = false
  #login: Promise<unknown> | undefined

  constructor(config: OAuthConfig = {}) {
    const { clientSecret: _secret, scopes: _scopes, ...options } = config
    this.#options = options
    this.#runtime = makeEdgeRuntime(options, "default")
  }

  /**
   * After a login stored in another account's file: a client that names no
   * account or file follows it (the login is now the active account), on a
   * fresh runtime; the old one is released.
   */
  async #follow(result: LoginResult, before: string): Promise<void> {
    if (result.tokenFilePath === before || this.#options.account !== undefined || this.#options.tokenFilePath !== undefined) return
    const old = this.#runtime
    this.#runtime = makeEdgeRuntime(this.#options, "default")
    this.#fetch = undefined
    await old.dispose().catch(() => {})
  }

  async #run<A>(effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal): Promise<A> {
    if (this.#disposed) throw new KimiAuthError("DISPOSED", "This KimiOAuthClient was disposed; create a new one.")
    if (signal?.aborted) throw new KimiAuthError("ABORTED", "The operation was cancelled.", { cause: signal.reason })
    const exit = await this.#runtime.run(effect, signal)
    if (Exit.isSuccess(exit)) return exit.value
    throw toKimiAuthError(exit.cause, signal)
  }

  /**
   * Starts the device flow: asks Kimi for a code and starts polling in the
   * background. Show `userCode` and the URL to the user, then await
   * `waitForCompletion()`. Aborting `signal` stops the whole login.
   */
  async authorize(options: CallOptions = {}): Promise<AuthorizationSession> {
    // A fault that outlasted the device flow's retries: its message must not promise another retry.
    const final = <A, E extends { readonly _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.mapError(effect, (e) => (isTransient(e) ? gaveUp(e) : e))
    // Proven storable first: the user must never approve a login that cannot be kept.
    const authorization = await this.#run(
      final(Effect.andThen(checkCanStoreLogin, Effect.flatMap(DeviceFlow, (f) => f.start))),
      options.signal
    )
    const startedAt = Date.now()
    const controller = new AbortController()
    const forward = () => controller.abort(options.signal?.reason)
    options.signal?.addEventListener("abort", forward, { once: true })
    const completion = this.#run(
      Effect.gen(function*() {
        const flow = yield* DeviceFlow
        const settings = yield* KimiAuthConfig
        const tokens = yield* final(flow.awaitTokens(authorization))
        // The same Kimi user replaces their account's login; another user adds an account.
        const stored = yield* storeAsAccount(tokens)
        const account = stored.account === undefined
          ? undefined
          : (yield* listAccounts()).find((a) => a.account.file === stored.account?.file)
        const result: LoginResult = {
          expiresAt: new Date(tokens.expiresAt * 1000),
          tokenFilePath: stored.tokenFilePath,
          account: account === undefined ? undefined : toKimiAccount(account),
          replaced: stored.replaced
        }
        return { result, before: settings.tokenFilePath }
      }),
      controller.signal
    ).then(async ({ before, result }) => (await this.#follow(result, before), result))
      .finally(() => options.signal?.removeEventListener("abort", forward))
    // Nobody may be listening yet: keep an unobserved rejection from crashing the host.
    completion.catch(() => {})
    this.#login = completion
    return {
      verificationUri: authorization.verificationUri,
      verificationUriComplete: authorization.verificationUriComplete,
      userCode: authorization.userCode,
      expiresIn: authorization.expiresIn,
      expiresAt: new Date(startedAt + authorization.expiresIn * 1000),
      interval: authorization.interval,
      cancel: () => controller.abort(new KimiAuthError("ABORTED", "The login was cancelled.")),
      waitForCompletion: (wait = {}) => {
        if (!wait.signal) return completion
        const signal = wait.signal
        if (signal.aborted) return Promise.reject(new KimiAuthError("ABORTED", "Stopped waiting for the login.", { cause: signal.reason }))
        return new Promise<LoginResult>((resolve, reject) => {
          const onAbort = () => reject(new KimiAuthError("ABORTED", "Stopped waiting for the login.", { cause: signal.reason }))
          signal.addEventListener("abort", onAbort, { once: true })
          completion.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort))
        })
      }
    }
  }

  /**
   * A valid access token, refreshed first when it is due. Waits for a login
   * started by {@link authorize} on this client to finish first. Rejects with
   * code `NOT_LOGGED_IN` when there is no usable login.
   */
  async getValidAccessToken(options: CallOptions = {}): Promise<string> {
    if (this.#login) await this.#login.catch(() => {})
    const token = await this.#run(Effect.flatMap(TokenManager, (m) => m.getAccessToken), options.signal)
    return Redacted.value(token)
  }

  /** The stored login's state; never a secret. */
  async status(options: CallOptions = {}): Promise<KimiAuthStatus> {
    return this.#run(
      Effect.map(loginStatus, (s) => ({
        loggedIn: s.tokens !== undefined,
        expiresAt: s.tokens ? new Date(s.tokens.expiresAt * 1000) : undefined,
        refreshDue: s.tokens?.refreshDue ?? false,
        deviceId: s.deviceId,
        tokenFilePath: s.tokenFilePath,
        region: s.region,
        oauthHost: s.oauthHost,
        apiBaseUrl: s.apiBaseUrl
      })),
      options.signal
    )
  }

  /**
   * The plan's quota from Kimi's `/usages`, in either of its shapes: every
   * window (old shape: weekly and 5-hour with used/limit; new plans: 5-hour,
   * weekly, monthly total and monthly code with the share used) with when it
   * resets, the booster wallet, and `shape`. The same data as
   * `kimi-auth usage` and the Effect `KimiApi.usage`. Rejects with code
   * `NOT_LOGGED_IN` without a usable login.
   */
  async usage(options: CallOptions = {}): Promise<KimiUsage> {
    if (this.#login) await this.#login.catch(() => {})
    return this.#run(Effect.flatMap(KimiApi, (api) => api.usage).pipe(Effect.provide(KimiApi.layerFromAuth)), options.signal)
  }

  #fetch: Promise<(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>> | undefined

  /**
   * A `fetch` for the Kimi API, authorized by the same core as the OpenCode
   * plugin: requests below the login's API base (`status().apiBaseUrl`) get a
   * valid bearer and the identity headers Kimi expects, a `401` is healed by
   * one refresh and one retry, and a used-up quota is answered `403` with a
   * message naming the window and its reset. Other URLs pass through
   * untouched. No login is a `401` error response, never an exception.
   * Waits for a login started by {@link authorize} on this client to finish first.
   */
  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    if (this.#login) await this.#login.catch(() => {})
    const f = await (this.#fetch ??= this.#buildFetch())
    return f(input, init)
  }

  async #buildFetch() {
    const settings = await this.#run(KimiAuthConfig.use(Effect.succeed)).catch(() => undefined)
    const stored = await this.#run(Effect.flatMap(TokenStore, (s) => s.load)).catch(() => undefined)
    const identity = await this.#run(DeviceIdentity.use(Effect.succeed)).catch(() => undefined)
    // The login's issuer decides the API base (unless pinned); it follows every token handed out.
    let apiBaseUrl = settings === undefined ? undefined : issuerFor(settings, stored).apiBaseUrl
    const tokens = makeManagedTokenSource({
      // `#run` rejects with a KimiAuthError (the facade's own wording): carried to the mapping as the failure.
      run: (effect, signal) => this.#run(effect, signal).then(Exit.succeed, Exit.fail),
      failure: authErrorFailure,
      onTokens: (t) => {
        if (settings !== undefined) apiBaseUrl = issuerFor(settings, t).apiBaseUrl
      }
    })
    return makeKimiFetch({
      headers: identity?.headers ?? {},
      ...(apiBaseUrl === undefined ? {} : { apiBaseUrl: () => apiBaseUrl! }),
      getAccessToken: tokens.getAccessToken,
      refreshAfterRejection: tokens.refreshAfterRejection
    })
  }

  /**
   * Removes the stored tokens (the device id is kept), recording the login's
   * fingerprints in `logged-out.json` so that no copy of it (OpenCode's
   * `auth.json`) is adopted back by the plugin. OpenCode's own copy is left in
   * its file: `kimi-auth logout` removes that too. Resolves `false` when there
   * were none.
   */
  async logout(options: CallOptions = {}): Promise<boolean> {
    return this.#run(Effect.flatMap(TokenManager, (m) => m.clear), options.signal)
  }

  /**
   * The Kimi accounts logged in on this machine (this client's storage
   * folder), with the active one of each region. An account whose user is
   * not known yet is asked once (`GET /me`). Never a secret.
   */
  async accounts(options: CallOptions = {}): Promise<ReadonlyArray<KimiAccount>> {
    if (this.#login) await this.#login.catch(() => {})
    return this.#run(Effect.map(listAccounts({ learn: true }), (list) => list.map(toKimiAccount)), options.signal)
  }

  /** Stops every running call and releases the runtime. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await this.#runtime.dispose()
  }
}
