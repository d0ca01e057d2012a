/**
 * An `HttpClient` for the Kimi API: the {@link authorize} core (the same one
 * behind the OpenCode plugin's and the AI SDK's `fetch`) adapted to
 * `effect/http`.
 *
 * Requests below the API base carry a valid bearer and the identity headers,
 * and a `401` is healed once (one refresh, one retry). Requests to any other
 * URL go to the underlying client untouched: no bearer, no token lookup.
 *
 * Failures, typed. `HttpClient.HttpClient` can only fail with an
 * `HttpClientError`, so the layer that provides it carries the typed error
 * as that error's `reason.cause`:
 * - no usable login (`NotLoggedInError`, or any other token error such as a
 *   `NetworkError` while refreshing): a `TransportError` (nothing was sent);
 * - the plan's quota is used up ({@link QuotaExceededError}, with the window
 *   and reset from `/usages`): a `StatusCodeError` with Kimi's response. It
 *   is a failure, not a response, so that `HttpClient.retryTransient` never
 *   retries a 429 quota answer in vain.
 * {@link withKimiErrors} (or the {@link KimiHttpClient} service, which has it
 * applied) lifts them into the error channel. A plain `429` rate limit is a
 * response like any other (and transient for `retryTransient`).
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import { QuotaExceededError } from "../api/ApiErrors.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { isTransient, NotLoggedInError } from "../Errors.js"
import { issuerFor, KimiAuthConfig, type KimiAuthSettings } from "../config/KimiAuthConfig.js"
import { type KimiAuthLayerOptions, type KimiAuthServices, layer as kimiAuthLayer, platformLayer } from "../KimiAuth.js"
import { concatBytes, readTextPrefix } from "../net/HttpBody.js"
import { authorize, kimiHeaders, type Outcome, quotaMessage, REJECTED_DETAIL, type TokenResult } from "./Authorize.js"
import { isBelowApiBase } from "./ApiBase.js"
import { type TokenError, TokenManager } from "../tokens/TokenManager.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import { TokenStore } from "../storage/TokenStore.js"
import { blockingWindow } from "../api/Usage.js"
import { readUsageWithClient } from "../api/UsageReader.js"

/** The typed failures of a Kimi request besides the HTTP client's own. */
export type KimiRequestError = TokenError | QuotaExceededError


/**
 * The API base requests are authorized for: a pinned one (option or env),
 * else the one of the region that issued the login, else the settings'.
 */
export const apiBaseFor = (settings: KimiAuthSettings, tokens: TokenSet | undefined): string =>
  issuerFor(settings, tokens).apiBaseUrl

/** A request whose body can be sent twice (a stream body is read into memory once). */
const replayable = (request: HttpClientRequest.HttpClientRequest) =>
  request.body._tag !== "Stream"
    ? Effect.succeed(request)
    : Effect.gen(function*() {
      const body = request.body as Extract<HttpClientRequest.HttpClientRequest["body"], { _tag: "Stream" }>
      const chunks = yield* Stream.runCollect(body.stream)
      const all = concatBytes(chunks, chunks.reduce((n, c) => n + c.byteLength, 0))
      return HttpClientRequest.bodyUint8Array(request, all, body.contentType)
    })

const rebuild = (
  request: HttpClientRequest.HttpClientRequest,
  response: HttpClientResponse.HttpClientResponse,
  text: string
) => HttpClientResponse.fromWeb(request, new Response(text, { status: response.status, headers: response.headers }))

/** The same answer with status 403, Kimi's status kept in `x-kimi-upstream-status`. */
const asForbidden = (request: HttpClientRequest.HttpClientRequest, response: HttpClientResponse.HttpClientResponse) =>
  response.status === 403 ? response : HttpClientResponse.fromWeb(
    request,
    new Response(response.stream.pipe(Stream.toReadableStream()), {
      status: 403,
      headers: { ...response.headers, "x-kimi-upstream-status": String(response.status) }
    })
  )

const tokenFailure = (error: TokenError): Extract<TokenResult, { ok: false }> => ({
  ok: false,
  status: error._tag === "NotLoggedInError" ? 401 : 503,
  code: error._tag,
  message: error.message,
  error
})

/** The error a token failure, a rejected login or a quota answer becomes on `HttpClient.HttpClient`. */
const toHttpClientError = (
  request: HttpClientRequest.HttpClientRequest,
  outcome: Exclude<Outcome<HttpClientResponse.HttpClientResponse>, { _tag: "Answered" | "SendFailed" }>,
  nowMillis: number
): HttpClientError.HttpClientError => {
  switch (outcome._tag) {
    case "NoToken":
    case "Rejected": {
      const cause = outcome._tag === "Rejected"
        ? new NotLoggedInError({ reason: "refresh-rejected", message: outcome.message, detail: REJECTED_DETAIL, hint: { _tag: "LogIn" } })
        : outcome.failure.error ?? new NotLoggedInError({ reason: "no-tokens", message: outcome.failure.message })
      const props = { request, cause, description: (cause as { message: string }).message }
      // A TransportError is what `retryTransient` retries: only for a token error that may clear up by itself
      // (the network while refreshing); a dead login is an EncodeError (the request could not be authorized).
      return new HttpClientError.HttpClientError({
        reason: isTransient(cause as { _tag: string })
          ? new HttpClientError.TransportError(props)
          : new HttpClientError.EncodeError(props)
      })
    }
    case "Refused": {
      const refusal = outcome.refusal
      if (refusal._tag !== "QuotaExceeded") throw new Error("unreachable: a rate limit is answered, not failed")
      const window = outcome.usage === undefined ? undefined : blockingWindow(outcome.usage)
      const cause = new QuotaExceededError({
        status: refusal.status,
        code: refusal.code,
        window,
        resetsAt: window?.resetsAt,
        usage: outcome.usage,
        message: quotaMessage(refusal, outcome.usage, nowMillis)
      })
      return new HttpClientError.HttpClientError({
        reason: new HttpClientError.StatusCodeError({
          request,
          // Shown as a 403 whatever Kimi sent (429 too), so that `retryTransient` does not retry it in vain.
          response: asForbidden(request, outcome.response),
          cause,
          description: cause.message
        })
      })
    }
  }
}

/** The typed Kimi error an `HttpClientError` of this client carries, if any. */
export const kimiErrorOf = (error: HttpClientError.HttpClientError): KimiRequestError | undefined => {
  const cause = error.reason.cause as { readonly _tag?: unknown } | undefined
  switch (cause?._tag) {
    case "QuotaExceededError":
    case "NotLoggedInError":
    case "NetworkError":
    case "ServerError":
    case "TokenStoreError":
    case "LockTimeoutError":
    case "InvalidResponseError":
    case "OAuthError":
      return cause as KimiRequestError
    default:
      return undefined
  }
}

/** Lifts the typed Kimi errors carried by `HttpClientError`s into the error channel. */
export const withKimiErrors = (
  client: HttpClient.HttpClient
): HttpClient.HttpClient.With<HttpClientError.HttpClientError | KimiRequestError> =>
  HttpClient.transformResponse(client, (effect) =>
    Effect.mapError(effect, (e): HttpClientError.HttpClientError | KimiRequestError => kimiErrorOf(e) ?? e))

/** Runs effects as promises in one fiber's context (its clock, its services), rejecting with their error. */
const promiseRunner = (context: Context.Context<never>) => {
  const run = Effect.runPromiseExitWith(context)
  return <A, E>(effect: Effect.Effect<A, E>, signal?: AbortSignal): Promise<A> =>
    run(effect, signal ? { signal } : undefined).then((exit) => {
      if (Exit.isSuccess(exit)) return exit.value
      const e = Cause.findErrorOption(exit.cause)
      throw Option.isSome(e) ? e.value : Cause.squash(exit.cause)
    })
}

/** What becomes of an outcome on `HttpClient.HttpClient`: the response, or the failure that carries the typed error. */
const settle = (
  request: HttpClientRequest.HttpClientRequest,
  outcome: Outcome<HttpClientResponse.HttpClientResponse>,
  nowMillis: number
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> => {
  switch (outcome._tag) {
    case "Answered":
      return Effect.succeed(outcome.response)
    case "Refused":
      return outcome.refusal._tag === "RateLimited"
        ? Effect.succeed(outcome.response)
        : Effect.fail(toHttpClientError(request, outcome, nowMillis))
    case "NoToken":
    case "Rejected":
      return Effect.fail(toHttpClientError(request, outcome, nowMillis))
    case "SendFailed":
      return HttpClientError.isHttpClientError(outcome.cause) ? Effect.fail(outcome.cause) : Effect.die(outcome.cause)
  }
}

/**
 * Builds the authorizing client over the `HttpClient` in context (the
 * platform's), the token manager and the device identity.
 */
export const make = Effect.gen(function*() {
  const underlying = yield* HttpClient.HttpClient
  const manager = yield* TokenManager
  const identity = yield* DeviceIdentity
  const settings = yield* KimiAuthConfig
  const store = yield* TokenStore
  // The login's issuer decides the API base: read the stored set once, then follow every token handed out.
  let latest: TokenSet | undefined
  const stored = yield* Effect.cached(store.load.pipe(Effect.orElseSucceed(() => undefined)))
  const currentBase = Effect.suspend(() =>
    latest !== undefined || settings.apiBaseUrlPinned
      ? Effect.succeed(apiBaseFor(settings, latest))
      : Effect.map(stored, (t) => apiBaseFor(settings, t))
  )
  const keep = (effect: Effect.Effect<TokenSet, TokenError>) => Effect.tap(effect, (t) => Effect.sync(() => (latest = t)))
  const tokens = {
    get: keep(manager.getTokens),
    refresh: (rejected: string) => keep(manager.invalidate(Redacted.make(rejected)))
  }

  return HttpClient.make((request, url) =>
    Effect.gen(function*() {
      const base = yield* currentBase
      if (!isBelowApiBase(url.href, base)) return yield* underlying.execute(request)
      const sendable = yield* replayable(request).pipe(
        Effect.mapError((cause) =>
          new HttpClientError.HttpClientError({
            reason: new HttpClientError.EncodeError({ request, cause, description: "the request body could not be read" })
          })
        )
      )
      const promise = promiseRunner(yield* Effect.context<never>())
      const authorized = (token: string) => (req: HttpClientRequest.HttpClientRequest) =>
        HttpClientRequest.setHeaders(req, kimiHeaders(identity.headers, token))
      const tokenResult = (effect: Effect.Effect<TokenSet, TokenError>, signal?: AbortSignal): Promise<TokenResult> =>
        promise(Effect.result(effect), signal).then((r) =>
          r._tag === "Success" ? { ok: true, token: Redacted.value(r.success.accessToken) } : tokenFailure(r.failure)
        )

      const outcome = yield* Effect.promise((signal) =>
        authorize<HttpClientResponse.HttpClientResponse>({
          send: (token) => promise(underlying.execute(authorized(token)(sendable)), signal),
          status: (r) => r.status,
          header: (r, name) => r.headers[name],
          readText: (r, max) => promise(readTextPrefix(r, max), signal),
          withText: (r, text) => rebuild(request, r, text),
          discard: (r) => promise(Effect.ignore(Stream.runDrain(r.stream)), signal)
        }, {
          tokens: {
            getAccessToken: (s) => tokenResult(tokens.get, s),
            refreshAfterRejection: (rejected, s) => tokenResult(tokens.refresh(rejected), s)
          },
          signal,
          readUsage: (token, s) => promise(readUsageWithClient(underlying, authorized(token), base), s ?? signal)
        })
      )
      return yield* settle(request, outcome, yield* Clock.currentTimeMillis)
    })
  )
})

/**
 * The Kimi API client with the typed errors in its error channel
 * ({@link withKimiErrors} applied): what the `KimiApi` service and programs
 * that want `QuotaExceededError` / `NotLoggedInError` by type use.
 */
export class KimiHttpClient extends Context.Service<
  KimiHttpClient,
  HttpClient.HttpClient.With<HttpClientError.HttpClientError | KimiRequestError>
>()("opencode-kimi-auth/KimiHttpClient") {}

/** The services the layers need from `KimiAuth.layer` / `KimiAuth.layerNode`. */
export type Requirements = HttpClient.HttpClient | TokenManager | TokenStore | DeviceIdentity | KimiAuthConfig

/**
 * Provides `HttpClient.HttpClient` (authorizing, over the one in context) and
 * {@link KimiHttpClient}. Put it over `KimiAuth.layer(...)` plus a platform,
 * or use {@link layerNode}.
 */
export const layer: Layer.Layer<HttpClient.HttpClient | KimiHttpClient, never, Requirements> = Layer.effectContext(
  Effect.map(make, (client) =>
    Context.make(HttpClient.HttpClient, client).pipe(Context.add(KimiHttpClient, withKimiErrors(client))))
)

/**
 * Batteries included for Node and Bun: every `KimiAuth` service plus the
 * authorizing `HttpClient.HttpClient` and {@link KimiHttpClient}.
 */
export const layerNode = (
  options: KimiAuthLayerOptions = {}
): Layer.Layer<HttpClient.HttpClient | KimiHttpClient | KimiAuthServices, Layer.Error<ReturnType<typeof kimiAuthLayer>>> =>
  layer.pipe(Layer.provideMerge(kimiAuthLayer(options)), Layer.provideMerge(platformLayer))
