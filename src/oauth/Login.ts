/**
 * The whole device login, composed from the core services: ask for a code,
 * show it (through a callback the edge supplies), wait for approval, and
 * store the tokens under the cross-process lock.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { DeviceFlow, type DeviceFlowError, type PollEvent } from "./DeviceFlow.js"
import {
  isTransient,
  type LockTimeoutError,
  NetworkError,
  ServerError,
  type TokenStoreError,
  type TransientError
} from "../Errors.js"
import type { DeviceIdentity } from "./DeviceIdentity.js"
import type { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { checkCanStoreLogin, storeLogin } from "../storage/LoginStorage.js"
import type { DeviceAuthorization } from "./OAuthClient.js"
import type { RetryNotice } from "./Retry.js"
import type { TokenManager } from "../tokens/TokenManager.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import type { TokenStore } from "../storage/TokenStore.js"

/** How an edge shows the code and follows progress. */
export interface LoginHandlers<R = never> {
  /** Called once with the codes, before polling starts: show the user code and the URL. */
  readonly onCode: (authorization: DeviceAuthorization) => Effect.Effect<void, never, R>
  /** Called on every poll event (pending, slow_down, retried fault). */
  readonly onEvent?: ((event: PollEvent) => Effect.Effect<void>) | undefined
  /** Called before each retry of the first request (the one that asks for a code), with its wait. */
  readonly onStartRetry?: ((retry: RetryNotice) => Effect.Effect<void>) | undefined
}

/** Every way a login can fail. */
export type LoginError = DeviceFlowError | TokenStoreError | LockTimeoutError

/**
 * The message of a transient fault that ended the login: the device flow has
 * already retried it, so "it will be retried" (true of the fault while
 * polling) is replaced by what to do now. The first sentence (what happened,
 * with the URL or status) is kept.
 */
export const gaveUpMessage = (error: TransientError): string => {
  const what = error.message.split(/(?<=\.)\s/)[0] ?? error.message
  return error._tag === "ServerError"
    ? `${what} The login gave up after several attempts; try again in a few minutes.`
    : `${what} The login gave up after several attempts: check your connection and the OAuth host ` +
      `(KIMI_CODE_OAUTH_HOST / KIMI_OAUTH_HOST, or the region), then start the login again.`
}

/** The same fault with {@link gaveUpMessage} as its message (for edges that drive the device flow themselves). */
export const gaveUp = (error: TransientError): TransientError =>
  error._tag === "ServerError"
    ? new ServerError({
      url: error.url,
      status: error.status,
      excerpt: error.excerpt,
      retryAfterMillis: error.retryAfterMillis,
      message: gaveUpMessage(error)
    })
    : new NetworkError({ url: error.url, cause: error.cause, message: gaveUpMessage(error) })

/**
 * The device login up to Kimi's approval: proves the login can be stored in
 * the configured store (`checkCanStoreLogin`), asks for a code, shows it,
 * and waits for approval. Returns the approved tokens, not yet stored (the
 * accounts' login decides where they go, `accounts/AccountLogin.ts`).
 * Interrupting it stops polling at once.
 */
export const approveLogin = <R = never>(
  handlers: LoginHandlers<R>
): Effect.Effect<TokenSet, LoginError, DeviceFlow | TokenStore | KimiAuthConfig | R> =>
  Effect.gen(function*() {
    const flow = yield* DeviceFlow
    yield* checkCanStoreLogin
    const authorization = yield* (handlers.onStartRetry && flow.startWith ? flow.startWith(handlers.onStartRetry) : flow.start)
    yield* handlers.onCode(authorization)
    return yield* flow.awaitTokens(authorization, handlers.onEvent)
  }).pipe(Effect.mapError((e): LoginError => (isTransient(e) ? gaveUp(e) : e)))

/**
 * Runs a device login end to end and stores the tokens in the configured
 * token file. Interrupting it stops polling at once and stores nothing. A
 * network or server fault that outlasts the device flow's retries ends the
 * login with a message that says so. Before any code is requested it proves
 * the login can be stored (`checkCanStoreLogin`); approved tokens that still
 * cannot be saved are kept in a rescue file the error names (`storeLogin`).
 */
export const login = <R = never>(
  handlers: LoginHandlers<R>
): Effect.Effect<TokenSet, LoginError, DeviceFlow | TokenManager | TokenStore | DeviceIdentity | KimiAuthConfig | R> =>
  Effect.gen(function*() {
    const tokens = yield* approveLogin(handlers)
    yield* storeLogin(tokens)
    return tokens
  }).pipe(Effect.withSpan("login"))
