/**
 * The token manager as the request core's {@link TokenSource}: the one
 * adapter behind the OpenCode plugin, `createKimi` and the facade's `fetch`.
 *
 * Each edge runs the manager's Effects in its own runtime and words its
 * failures its own way, so both come in as options: a runner that resolves
 * an `Exit` (never rejects), and a failure mapping from the `Cause` to the
 * `{ ok: false, status, code, message }` the core turns into an error
 * response. What an edge adds on purpose (a configuration that did not
 * resolve, every token set handed out watched) is an option too (a login of
 * the other region is refused by the core itself, `tokens/RegionGuard.ts`); the plugin's fast path stays in the plugin,
 * layered over this source.
 *
 * The two plain failure mappings live here, each a decision with a name:
 * {@link typedFailure} (`createKimi`: the typed error kept) and
 * {@link authErrorFailure} (the facade: its stable error codes).
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type { TokenResult, TokenSource } from "./Authorize.js"
import { type TokenError, TokenManager } from "../tokens/TokenManager.js"
import type { TokenSet } from "../tokens/TokenSet.js"

/** Why there is no token, in the core's terms. */
export type TokenFailure = Extract<TokenResult, { ok: false }>

/** A token set handed out (with its access token read out), or why there is none. */
export type TokenSetResult =
  | { readonly ok: true; readonly tokens: TokenSet; readonly access: string }
  | TokenFailure

/** Runs one of the manager's Effects in the edge's runtime; resolves its `Exit`, never rejects. */
export type TokenRunner = (
  effect: Effect.Effect<TokenSet, TokenError, TokenManager>,
  signal?: AbortSignal
) => Promise<Exit.Exit<TokenSet, unknown>>

/** What differs between the edges, on purpose. */
export interface ManagedTokenSourceOptions {
  readonly run: TokenRunner
  /** The edge's wording of a failed run. */
  readonly failure: (cause: Cause.Cause<unknown>) => TokenFailure
  /** Answered for every call without running anything (the edge's settings did not resolve). */
  readonly unavailable?: TokenFailure | undefined
  /** Sees every token set served. */
  readonly onTokens?: ((tokens: TokenSet) => void) | undefined
}

/** The core's {@link TokenSource}, plus the token set itself for edges that show its expiry. */
export interface ManagedTokenSource extends TokenSource {
  /** The current token set (refreshed under the lock when due), or why there is none. */
  readonly getTokens: (signal?: AbortSignal) => Promise<TokenSetResult>
}

// Built per call, as each edge did before this adapter.
const currentTokens = () => Effect.flatMap(TokenManager, (m) => m.getTokens)

/** Builds the token source of one edge. */
export const makeManagedTokenSource = (options: ManagedTokenSourceOptions): ManagedTokenSource => {
  const serve = async (
    effect: Effect.Effect<TokenSet, TokenError, TokenManager>,
    signal?: AbortSignal
  ): Promise<TokenSetResult> => {
    if (options.unavailable) return options.unavailable
    const exit = await options.run(effect, signal)
    if (Exit.isFailure(exit)) return options.failure(exit.cause)
    const tokens = exit.value
    options.onTokens?.(tokens)
    return { ok: true, tokens, access: Redacted.value(tokens.accessToken) }
  }
  const token = async (effect: Effect.Effect<TokenSet, TokenError, TokenManager>, signal?: AbortSignal): Promise<TokenResult> => {
    const r = await serve(effect, signal)
    return r.ok ? { ok: true, token: r.access } : r
  }
  return {
    getTokens: (signal) => serve(currentTokens(), signal),
    getAccessToken: (signal) => token(currentTokens(), signal),
    refreshAfterRejection: (rejected, signal) =>
      token(Effect.flatMap(TokenManager, (m) => m.invalidate(Redacted.make(rejected))), signal)
  }
}

/** The message of a failed run: the typed error's, "cancelled" for an interruption, else the defect. */
export const causeMessage = (cause: Cause.Cause<unknown>): string => {
  const e = Cause.findErrorOption(cause)
  if (Option.isSome(e)) return (e.value as { message?: string }).message ?? String(e.value)
  return Cause.hasInterruptsOnly(cause) ? "The request was cancelled." : String(Cause.squash(cause))
}

/**
 * `createKimi`'s failure mapping, for hosts that keep types: no login is a
 * `401`, an unreachable or failing token endpoint a `503`, anything else a
 * `500`; the typed error rides along as `error`.
 */
export const typedFailure = (cause: Cause.Cause<unknown>): TokenFailure => {
  const e = Cause.findErrorOption(cause)
  const error = Option.isSome(e) ? (e.value as TokenError) : undefined
  const tag = error?._tag
  return {
    ok: false,
    status: tag === "NotLoggedInError" ? 401 : tag === "NetworkError" || tag === "ServerError" ? 503 : 500,
    code: tag === "NotLoggedInError" ? "kimi_login_required" : "kimi_auth_error",
    message: causeMessage(cause),
    error
  }
}

/**
 * The facade's failure mapping: its runner fails with the `KimiAuthError`
 * its calls reject with (a stable `code`): `NOT_LOGGED_IN` is a `401`,
 * `NETWORK_ERROR` and `SERVER_ERROR` a `503`, anything else a `500`; the
 * error rides along for the caller.
 */
export const authErrorFailure = (cause: Cause.Cause<unknown>): TokenFailure => {
  const e = Cause.squash(cause) as { readonly code?: string; readonly message: string }
  return {
    ok: false,
    status: e.code === "NOT_LOGGED_IN" ? 401 : e.code === "NETWORK_ERROR" || e.code === "SERVER_ERROR" ? 503 : 500,
    code: e.code === "NOT_LOGGED_IN" ? "kimi_login_required" : "kimi_auth_error",
    message: e.message,
    error: e
  }
}
