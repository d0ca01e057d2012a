/**
 * The three HTTP calls of Kimi's OAuth server, one function per spec step:
 *
 * - RFC 8628 section 3.1/3.2: device authorization request and response;
 * - RFC 8628 section 3.4/3.5: device access token request, one poll;
 * - RFC 6749 section 6: refreshing an access token.
 *
 * Bodies are form-encoded with `Accept: application/json`, every call carries
 * the device identity headers and one deadline for the whole exchange (answer
 * and body). The server is not trusted:
 *
 * - a body is read as a stream capped at {@link OAUTH_BODY_LIMIT_BYTES}; past
 *   the cap (or a larger `Content-Length`) the request is aborted;
 * - redirects are never followed (a 302 to another origin would carry the
 *   device headers there, and its body would be taken for tokens);
 * - tokens must be RFC 6750 bearer tokens (a CR/LF in a token would inject a
 *   header wherever it is sent), lifetimes must be believable, user codes and
 *   verification URIs printable: the checks of `./OAuthAnswer.ts`;
 * - no secret the call sent or received reaches an error, in any encoding.
 *
 * RFC 6749 section 5.2 error bodies become tagged errors. Anything else (an
 * HTML error page, malformed JSON, a missing field, an empty body) becomes
 * {@link InvalidResponseError} with the status and a token-free excerpt:
 * never a crash, never a hang.
 *
 * Each decision (which issuer a refresh goes to, whether a redirect is a
 * downgrade, what a poll answer means, whether a refusal spends the login)
 * is a function of its own below; {@link make} wires them to the transport.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Option from "effect/Option"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import { DeviceIdentity } from "./DeviceIdentity.js"
import {
  AccessDeniedError,
  advised,
  DeviceCodeExpiredError,
  excerpt,
  InvalidGrantError,
  InvalidResponseError,
  NetworkError,
  OAuthError,
  type ServerError
} from "../Errors.js"
import { scrubBody, scrubText } from "./AnswerScrub.js"
import { proxyNote } from "../net/EnvFetch.js"
import { OAUTH_BODY_LIMIT_BYTES, readTextCapped } from "../net/HttpBody.js"
import { KimiAuthConfig, type KimiAuthSettings } from "../config/KimiAuthConfig.js"
import {
  answerKind,
  decodeDeviceAuthorization,
  decodeRefusal,
  decodeTokens,
  type DeviceAuthorization,
  type ErrorBody,
  invalidAt,
  type IssuedBy,
  type RawResponse
} from "./OAuthAnswer.js"
import type { KimiRegion } from "../light/Region.js"
import { type Issuer, issuerFor, type PlainSettings } from "../light/ResolveSettings.js"
import type { TokenSet } from "../tokens/TokenSet.js"

export {
  DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS,
  DEFAULT_POLL_INTERVAL_SECONDS,
  type DeviceAuthorization,
  MAX_DEVICE_CODE_LIFETIME_SECONDS,
  MAX_POLL_INTERVAL_SECONDS
} from "./OAuthAnswer.js"

/** RFC 8628 section 3.4: the grant type of a device access token request. */
export const DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

/** The result of one poll of the token endpoint (RFC 8628 section 3.5) that does not end the flow in error. */
export type PollOutcome =
  | { readonly _tag: "Authorized"; readonly tokens: TokenSet }
  | { readonly _tag: "Pending" }
  | { readonly _tag: "SlowDown" }

/** Errors every call can produce. */
export type OAuthCallError = NetworkError | ServerError | InvalidResponseError | OAuthError

/** The OAuth client service. */
export interface OAuthClientShape {
  /** RFC 8628 3.1: asks for a device code and a user code. */
  readonly requestDeviceAuthorization: Effect.Effect<DeviceAuthorization, OAuthCallError>
  /** RFC 8628 3.4: one poll. `access_denied` and `expired_token` fail with their own errors. */
  readonly pollDeviceToken: (
    deviceCode: Redacted.Redacted<string>
  ) => Effect.Effect<PollOutcome, OAuthCallError | AccessDeniedError | DeviceCodeExpiredError>
  /**
   * RFC 6749 6: trades a refresh token for a new token set. When the response
   * carries no `refresh_token` the one sent is kept (never wiped). A rejected
   * refresh token (`invalid_grant`, or a 401) fails with {@link InvalidGrantError}.
   * An answer with a valid new refresh token but an unusable access token
   * fails with {@link InvalidResponseError} carrying `rotatedRefreshToken`:
   * the sent one is spent, so store that one to keep the login.
   *
   * `issuer` is who issued the login (the hosts stored with its tokens): the
   * refresh goes to its OAuth host unless the settings pin one, since a
   * refresh token is only good at the region that issued it. The new token
   * set is stamped with the same issuer.
   *
   * Its deadline is `refreshAnswerTimeout` (5 minutes by default), not the
   * request timeout: once sent, the answer is the only copy of the new
   * refresh token.
   */
  readonly refreshToken: (
    refreshToken: Redacted.Redacted<string>,
    issuer?: Issuer
  ) => Effect.Effect<TokenSet, OAuthCallError | InvalidGrantError>
}

// ---------------------------------------------------------------------------
// Who issues a login, and where a refresh goes

type IssuerSettings = Pick<PlainSettings, "oauthHost" | "oauthHostPinned" | "apiBaseUrl" | "apiBaseUrlPinned" | "region">

/** A device login is issued by the configured host, for the configured region. */
export const loginIssuer = (settings: IssuerSettings): IssuedBy => ({
  oauthHost: settings.oauthHost,
  apiBaseUrl: settings.apiBaseUrl,
  region: settings.region
})

/**
 * Where a refresh goes, and who its new token set is stamped with: the hosts
 * stored with the login unless the settings pin them ({@link issuerFor}),
 * the stored region, else the configured one.
 */
export const refreshIssuer = (
  settings: IssuerSettings,
  stored: (Issuer & { readonly region?: KimiRegion | undefined }) | undefined
): IssuedBy => ({ ...issuerFor(settings, stored), region: stored?.region ?? settings.region })

// ---------------------------------------------------------------------------
// Answers refused before their body is read

/** Whether a redirect from `url` to `target` would go from https to plain http. */
export const isDowngrade = (url: string, target: string | undefined): boolean =>
  url.startsWith("https:") && target?.startsWith("http:") === true

/** The refusal of a 3xx answer of `url` (never followed), naming where it pointed and whether that is a downgrade. */
export const redirectRefusal = (url: string, status: number, location: string | undefined): InvalidResponseError => {
  const target = originOf(location, url)
  return invalidAt(
    url,
    status,
    "",
    `a redirect${target ? ` to ${target}` : ""}, which was refused${
      isDowngrade(url, target) ? " (it would downgrade https to plain http)" : ""
    }: OAuth calls never follow redirects, since the device headers and the secrets would go along`,
    "redirect"
  )
}

/** Whether an answer came from elsewhere than `url`: a custom `HttpClient` that followed a redirect by itself. */
export const answeredElsewhere = (responseUrl: string, url: string): boolean =>
  responseUrl !== "" && !sameResource(responseUrl, url)

/** The refusal of an answer of `url` that came from `responseUrl` after a redirect. */
export const foreignAnswerRefusal = (url: string, status: number, responseUrl: string): InvalidResponseError =>
  invalidAt(url, status, "", `an answer from ${originOf(responseUrl, url) ?? "another URL"} after a redirect, which was refused`, "redirect")

/** The refusal of a body past {@link OAUTH_BODY_LIMIT_BYTES} (the request is aborted). */
export const tooLargeRefusal = (url: string, status: number, declaredBytes: number | undefined): InvalidResponseError =>
  invalidAt(
    url,
    status,
    "",
    `an answer too large for an OAuth response (${
      declaredBytes !== undefined ? `${declaredBytes} bytes declared` : "more than"
    } the ${OAUTH_BODY_LIMIT_BYTES / 1024} KiB allowed; the request was aborted)`,
    "too-large"
  )

// ---------------------------------------------------------------------------
// What a refusal means

/** An RFC 6749 section 5.2 error no more specific class covers, with what the user can do about it. */
export const oauthError = (status: number, e: ErrorBody) =>
  new OAuthError({
    status,
    error: excerpt(e.error, 60),
    errorDescription: e.error_description ? excerpt(e.error_description, 300) : undefined,
    message: `The Kimi OAuth server refused the request: ${excerpt(e.error, 60)}${
      e.error_description ? ` (${excerpt(e.error_description)})` : ""
    }. ${
      e.error === "invalid_client"
        ? "The OAuth client id is not accepted; remove any custom clientId setting."
        : "Try again; if it persists, report it with this message."
    }`
  })

/**
 * RFC 8628 section 3.5: what a refused poll means. `authorization_pending`
 * and `slow_down` keep the flow going; `access_denied` and `expired_token`
 * end it with their own errors; anything else is an {@link OAuthError}.
 */
export const pollOutcome = (
  status: number,
  e: ErrorBody
): Effect.Effect<PollOutcome, OAuthError | AccessDeniedError | DeviceCodeExpiredError> => {
  switch (e.error) {
    case "authorization_pending":
      return Effect.succeed({ _tag: "Pending" })
    case "slow_down":
      return Effect.succeed({ _tag: "SlowDown" })
    case "access_denied":
      return Effect.fail(
        new AccessDeniedError(
          advised("The login was refused in the browser (access_denied). To log in, approve the request on the page.", { _tag: "LogIn" })
        )
      )
    case "expired_token":
      return Effect.fail(
        new DeviceCodeExpiredError(advised(CODE_EXPIRED, { _tag: "LogIn" }))
      )
    default:
      return Effect.fail(oauthError(status, e))
  }
}

/** What a device code that expired unapproved comes to, without the advice (the device flow says it too). */
export const CODE_EXPIRED = "The login code expired before it was approved. Approve the next code within its time limit."

/** Whether a refused refresh means the refresh token is no good: `invalid_grant`, or a 401 that does not blame the client id. */
export const isGrantRejected = (status: number, error: string): boolean =>
  error === "invalid_grant" || (status === 401 && error !== "invalid_client")

/** The login is gone: the server rejected the stored refresh token. */
export const grantRejected = (status: number, description: string | undefined) =>
  new InvalidGrantError({
    status,
    errorDescription: description ? excerpt(description, 300) : undefined,
    ...advised(
      `The stored Kimi login was rejected by the server (HTTP ${status}${description ? `: ${excerpt(description)}` : ""})`,
      { _tag: "LogIn" }
    )
  })

/** What a refused refresh means: {@link grantRejected} when {@link isGrantRejected}, else an {@link OAuthError}. */
export const refreshRefusal = (status: number, e: ErrorBody): InvalidGrantError | OAuthError =>
  isGrantRejected(status, e.error) ? grantRejected(status, e.error_description ?? undefined) : oauthError(status, e)

/** A non-2xx answer to a refresh, read: a 401 without a proper error body still means the grant was refused. */
const refusedRefresh = (raw: RawResponse): Effect.Effect<never, ServerError | InvalidResponseError | OAuthError | InvalidGrantError> =>
  decodeRefusal(raw).pipe(
    Effect.catchTag("InvalidResponseError", (e): Effect.Effect<never, InvalidResponseError | InvalidGrantError> =>
      raw.status === 401 ? Effect.fail(grantRejected(raw.status, undefined)) : Effect.fail(e)),
    Effect.flatMap((e) => Effect.fail(refreshRefusal(raw.status, e)))
  )

// ---------------------------------------------------------------------------
// The transport

/** The values of a form that are secrets (`Redacted`): scrubbed from every answer before it can reach an error. */
const secretsOf = (form: Record<string, string | Redacted.Redacted<string>>): Array<string> =>
  Object.values(form).flatMap((v) => (Redacted.isRedacted(v) ? [Redacted.value(v)] : []))

/** A short, secret-free reason of a transport failure (the error itself holds the request and its body). */
const transportReason = (e: HttpClientError.HttpClientError): string => {
  const cause = (e.reason as { readonly cause?: unknown }).cause
  const inner = (cause as { readonly cause?: { readonly code?: unknown } } | undefined)?.cause?.code ??
    (cause as { readonly code?: unknown } | undefined)?.code
  return typeof inner === "string" && /^[A-Z0-9_]{2,40}$/.test(inner) ? `${e.reason._tag} (${inner})` : e.reason._tag
}

const sameResource = (a: string, b: string) => {
  try {
    return new URL(a).href === new URL(b).href
  } catch {
    return a === b
  }
}

const originOf = (location: string | undefined, base: string): string | undefined => {
  if (location === undefined) return undefined
  try {
    return new URL(location, base).origin
  } catch {
    return undefined
  }
}

/** Effect's fetch client follows redirects unless told not to; other clients are checked by the response URL. */
const noRedirects = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.serviceOption(FetchHttpClient.RequestInit), (init) =>
    Effect.provideService(effect, FetchHttpClient.RequestInit, {
      ...Option.getOrElse(init, () => ({})),
      redirect: "manual"
    }))

/**
 * Reads an answer of `url` to the end: a redirect is refused (never followed),
 * and so is an answer from elsewhere or a body past {@link OAUTH_BODY_LIMIT_BYTES};
 * `secrets` (what the request sent) are scrubbed from its `safeBody`, as is and
 * after JSON decoding, and its `scrub` removes them from each decoded field.
 */
const readAnswer = (url: string, secrets: ReadonlyArray<string>) => (response: HttpClientResponse.HttpClientResponse) =>
  Effect.gen(function*() {
    if (response.status >= 300 && response.status < 400) {
      // Read a little of it only to end the exchange cleanly; never follow it.
      yield* Effect.ignore(readTextCapped(response, 4096))
      return yield* Effect.fail(redirectRefusal(url, response.status, response.headers["location"]))
    }
    if (answeredElsewhere(response.url, url)) {
      // A custom HttpClient that follows redirects by itself: the answer comes from elsewhere.
      return yield* Effect.fail(foreignAnswerRefusal(url, response.status, response.url))
    }
    const body = yield* readTextCapped(response, OAUTH_BODY_LIMIT_BYTES).pipe(
      Effect.catchTag("BodyTooLargeError", (e) => Effect.fail(tooLargeRefusal(url, response.status, e.declaredBytes)))
    )
    return {
      url,
      status: response.status,
      retryAfter: response.headers["retry-after"],
      body,
      safeBody: scrubBody(body, secrets),
      scrub: (text: string) => scrubText(text, secrets)
    } satisfies RawResponse
  })

/** The transport failed before an answer: where, why, and what to check (the proxy when one was used). */
const unreachable = (url: string, reason: string, detail: string, cause?: unknown) => {
  const proxy = proxyNote(cause, url)
  return new NetworkError({
    url,
    reason,
    message: proxy === ""
      ? `Cannot reach the Kimi OAuth server at ${url} (${detail}). ` +
        `Check your connection and the OAuth host setting (KIMI_OAUTH_HOST); it will be retried.`
      : `Cannot reach the Kimi OAuth server at ${url}${proxy}. ` +
        `Check the proxy settings (HTTPS_PROXY, NO_PROXY) and your connection; it will be retried.`
  })
}

/** No whole answer within the deadline. */
const noAnswerIn = (url: string, timeoutMillis: number) =>
  new NetworkError({
    url,
    reason: "timeout",
    message: `The Kimi OAuth server at ${url}${proxyNote(undefined, url)} did not answer within ${
      Math.round(timeoutMillis / 1000)
    } s. Check your connection; it will be retried.`
  })

/**
 * One form POST to the OAuth server with the identity headers, its answer
 * read under one deadline (status, capped body, the secrets sent scrubbed).
 */
const poster = (http: HttpClient.HttpClient, headers: Readonly<Record<string, string>>, settings: KimiAuthSettings) =>
(
  endpoint: string,
  form: Record<string, string | Redacted.Redacted<string>>,
  oauthHost = settings.oauthHost,
  deadline = settings.requestTimeout
) => {
  const url = `${oauthHost}${endpoint}`
  const request = HttpClientRequest.post(url).pipe(
    HttpClientRequest.setHeaders(headers),
    HttpClientRequest.acceptJson,
    HttpClientRequest.bodyUrlParams(form)
  )
  return noRedirects(http.execute(request)).pipe(
    Effect.flatMap(readAnswer(url, secretsOf(form))),
    Effect.tap((raw) =>
      Effect.logDebug(`oauth: POST ${endpoint} -> HTTP ${raw.status}`).pipe(
        Effect.annotateLogs({ grant: typeof form["grant_type"] === "string" ? form["grant_type"] : "device_authorization" })
      )
    ),
    // One deadline for the answer and its whole body: a slow drip ends here too (the read is interrupted, the request aborted).
    Effect.timeoutOrElse({ duration: deadline, orElse: () => Effect.fail(noAnswerIn(url, Duration.toMillis(deadline))) }),
    // Never keep the HttpClientError: it holds the request, and the request its body (the secrets).
    Effect.catchTag("HttpClientError", (cause) => Effect.fail(unreachable(url, transportReason(cause), cause.reason._tag, cause.reason.cause)))
  )
}

/**
 * Builds the client from the configuration, the device identity and an
 * `HttpClient` (use `FetchHttpClient.layer`: it works in Node and in Bun).
 */
export const make = Effect.gen(function*() {
  const settings = yield* KimiAuthConfig
  const identity = yield* DeviceIdentity
  const post = poster(yield* HttpClient.HttpClient, identity.headers, settings)

  const requestDeviceAuthorization = post("/api/oauth/device_authorization", { client_id: settings.clientId }).pipe(
    Effect.flatMap((raw) =>
      answerKind(raw.status) === "success"
        ? decodeDeviceAuthorization(raw)
        : Effect.flatMap(decodeRefusal(raw), (e) => Effect.fail(oauthError(raw.status, e)))
    ),
    Effect.withSpan("OAuthClient.requestDeviceAuthorization")
  )

  const pollDeviceToken = (deviceCode: Redacted.Redacted<string>) =>
    post("/api/oauth/token", {
      client_id: settings.clientId,
      device_code: deviceCode,
      grant_type: DEVICE_CODE_GRANT_TYPE
    }).pipe(
      Effect.flatMap((raw): Effect.Effect<PollOutcome, OAuthCallError | AccessDeniedError | DeviceCodeExpiredError> =>
        answerKind(raw.status) === "success"
          ? decodeTokens(raw, undefined, loginIssuer(settings)).pipe(Effect.map((tokens): PollOutcome => ({ _tag: "Authorized", tokens })))
          : Effect.flatMap(decodeRefusal(raw), (e) => pollOutcome(raw.status, e))
      ),
      Effect.withSpan("OAuthClient.pollDeviceToken")
    )

  const refreshToken = (refreshToken: Redacted.Redacted<string>, stored?: Issuer & { readonly region?: KimiRegion | undefined }) => {
    const issuer = refreshIssuer(settings, stored)
    return post("/api/oauth/token", {
      client_id: settings.clientId,
      grant_type: "refresh_token",
      refresh_token: refreshToken
      // Awaited for the long bound, not the request timeout: Kimi rotates on receipt, so this answer is the only
      // copy of the new refresh token (see `refreshAnswerTimeout`).
    }, issuer.oauthHost, settings.refreshAnswerTimeout).pipe(
      Effect.flatMap((raw): Effect.Effect<TokenSet, OAuthCallError | InvalidGrantError> =>
        answerKind(raw.status) === "success" ? decodeTokens(raw, refreshToken, issuer) : refusedRefresh(raw)
      ),
      Effect.withSpan("OAuthClient.refreshToken")
    )
  }

  return { requestDeviceAuthorization, pollDeviceToken, refreshToken } satisfies OAuthClientShape
})

/** The OAuth client service. */
export class OAuthClient extends Context.Service<OAuthClient, OAuthClientShape>()("opencode-kimi-auth/OAuthClient") {
  /** Needs the configuration, the device identity and an `HttpClient`. */
  static readonly layer: Layer.Layer<OAuthClient, never, KimiAuthConfig | DeviceIdentity | HttpClient.HttpClient> =
    Layer.effect(OAuthClient, make)
}
