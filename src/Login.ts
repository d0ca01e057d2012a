/**
 * The whole device login, composed from the core services: ask for a code,
 * show it (through a callback the edge supplies), wait for approval, and
 * store the tokens under the cross-process lock.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { DeviceFlow, type DeviceFlowError, type PollEvent } from "./DeviceFlow.js"
import type { LockTimeoutError, TokenStoreError } from "./Errors.js"
import type { DeviceAuthorization } from "./OAuthClient.js"
import { TokenManager } from "./TokenManager.js"
import type { TokenSet } from "./TokenSet.js"

/** How an edge shows the code and follows progress. */
export interface LoginHandlers<R = never> {
  /** Called once with the codes, before polling starts: show the user code and the URL. */
  readonly onCode: (authorization: DeviceAuthorization) => Effect.Effect<void, never, R>
  /** Called on every poll event (pending, slow_down, retried fault). */
  readonly onEvent?: ((event: PollEvent) => Effect.Effect<void>) | undefined
}

/** Every way a login can fail. */
export type LoginError = DeviceFlowError | TokenStoreError | LockTimeoutError

/**
 * Runs a device login end to end and stores the tokens. Interrupting it stops
 * polling at once and stores nothing.
 */
export const login = <R = never>(
  handlers: LoginHandlers<R>
): Effect.Effect<TokenSet, LoginError, DeviceFlow | TokenManager | R> =>
  Effect.gen(function*() {
    const flow = yield* DeviceFlow
    const manager = yield* TokenManager
    const authorization = yield* flow.start
    yield* handlers.onCode(authorization)
    const tokens = yield* flow.awaitTokens(authorization, handlers.onEvent)
    yield* manager.setTokens(tokens)
    return tokens
  }).pipe(Effect.withSpan("login"))
