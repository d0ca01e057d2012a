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
 *   verification URIs printable;
 * - no secret the call sent or received reaches an error, in any encoding.
 *
 * RFC 6749 section 5.2 error bodies become tagged errors. Anything else (an
 * HTML error page, malformed JSON, a missing field, an empty body) becomes
 * {@link InvalidResponseError} with the status and a token-free excerpt:
 * never a crash, never a hang.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import { DeviceIdentity } from "./DeviceIdentity.js"
import {
  AccessDeniedError,
  DeviceCodeExpiredError,
  excerpt,
  InvalidGrantError,
  InvalidResponseError,
  LOGIN_HINT,
  NetworkError,
  OAuthError,
  redactSecrets,
  ServerError
} from "./Errors.js"
import { proxyNote } from "./EnvFetch.js"
import { OAUTH_BODY_LIMIT_BYTES, readTextCapped } from "./HttpBody.js"
import { KimiAuthConfig } from "./KimiAuthConfig.js"
import { retryAfterMillis } from "./KimiRequest.js"
import type { KimiRegion } from "./Region.js"
import { type Issuer, issuerFor } from "./ResolveSettings.js"
import { TokenSet } from "./TokenSet.js"
import { isBearerToken, sanitizeLifetime } from "./TokenValidation.js"

/** RFC 8628 section 3.4: the grant type of a device access token request. */
export const DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

/** RFC 8628 section 3.2: the interval to use when the server sends none. */
export const DEFAULT_POLL_INTERVAL_SECONDS = 5

/**
 * Lifetime assumed when a token response omits `expires_in` (RFC 6749 makes it
 * optional) or sends one that is not believable (zero, negative, not finite,
 * more than a year): the token is then refreshed soon instead of trusted for years.
 */
export const DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS = 900

/** Longest device-code lifetime believed (RFC 8628 suggests minutes); longer values are cut to this. */
export const MAX_DEVICE_CODE_LIFETIME_SECONDS = 3600

/** Longest polling interval believed; a larger `interval` is cut to this. */
export const MAX_POLL_INTERVAL_SECONDS = 60

/** The device authorization response (RFC 8628 section 3.2), decoded. */
export interface DeviceAuthorization {
  readonly deviceCode: Redacted.Redacted<string>
  readonly userCode: string
  readonly verificationUri: string
  /** Optional in the RFC: a URI that carries the user code. Show the user code anyway (section 3.3.1). */
  readonly verificationUriComplete: string | undefined
  /** Lifetime of the device code, in seconds. */
  readonly expiresIn: number
  /** Minimum seconds between polls; {@link DEFAULT_POLL_INTERVAL_SECONDS} when absent. */
  readonly interval: number
}

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
   */
  readonly refreshToken: (
    refreshToken: Redacted.Redacted<string>,
    issuer?: Issuer
  ) => Effect.Effect<TokenSet, OAuthCallError | InvalidGrantError>
}

const NonEmpty = Schema.String.check(Schema.isNonEmpty())

/** RFC 6749 section 5.2 error body. */
const ErrorResponse = Schema.Struct({
  error: NonEmpty,
  error_description: Schema.optionalKey(Schema.NullOr(Schema.String)),
  error_uri: Schema.optionalKey(Schema.NullOr(Schema.String))
})

/** A response read to the end: status, headers we need, and the body text. */
interface RawResponse {
  readonly url: string
  readonly status: number
  readonly retryAfter: string | undefined
  readonly body: string
  /**
   * The body with every secret this request sent (device code, refresh token)
   * replaced by `<redacted>`, in every encoding: a server that echoes them back
   * in an error must not put them into our errors. Used for everything but
   * decoding a success.
   */
  readonly safeBody: string
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * What a user may see of a body. A 2xx body is where tokens live, so of a
 * JSON one only the field names are shown, never a value; anything else is a
 * scrubbed excerpt.
 */
const describeBody = (raw: RawResponse): string => {
  if (raw.status >= 200 && raw.status < 300) {
    const json = parseJson(raw.body)
    if (isObject(json)) {
      const names = Object.keys(json).filter((k) => /^[A-Za-z_][A-Za-z0-9_]{0,39}$/.test(k)).slice(0, 12)
      return names.length === 0 ? "a JSON object (values not shown)" : `a JSON object with ${names.join(", ")} (values not shown)`
    }
    if (json !== undefined) return `JSON of type ${Array.isArray(json) ? "array" : json === null ? "null" : typeof json} (not shown)`
  }
  return excerpt(raw.safeBody)
}

type InvalidReason = "too-large" | "redirect" | "invalid-token" | "malformed"

const invalidAt = (
  url: string,
  status: number,
  shown: string,
  what: string,
  reason: InvalidReason = "malformed",
  rotatedRefreshToken?: Redacted.Redacted<string>
) =>
  new InvalidResponseError({
    url,
    status,
    excerpt: shown,
    reason,
    rotatedRefreshToken,
    message: `The Kimi OAuth server answered ${url} with HTTP ${status} and ${what}${shown ? `: ${shown}` : ""}. ` +
      `This is not a valid OAuth response; try again later, and check the OAuth host setting (KIMI_OAUTH_HOST) if it persists.`
  })

const invalid = (raw: RawResponse, what: string, reason: InvalidReason = "malformed", rotated?: Redacted.Redacted<string>) =>
  invalidAt(raw.url, raw.status, describeBody(raw), what, reason, rotated)

/** The longest `Retry-After` an OAuth answer is taken at (the token manager fails fast past its own, shorter budget). */
const OAUTH_RETRY_AFTER_CAP_MILLIS = 3_600_000

/** Parses a 2xx body as a JSON object, or explains why it is not one. */
const jsonObject = (raw: RawResponse, what: string): Effect.Effect<Record<string, unknown>, InvalidResponseError> => {
  const json = parseJson(raw.body)
  if (json === undefined) return Effect.fail(invalid(raw, `a body that is not JSON (expected ${what})`))
  if (!isObject(json)) return Effect.fail(invalid(raw, `a JSON body that is not an object (expected ${what})`))
  return Effect.succeed(json)
}

/** Classifies a non-2xx answer: 5xx/429 are {@link ServerError}, else an RFC 6749 5.2 error body or invalid. */
type ErrorBody = typeof ErrorResponse.Type

const decodeFailure = (raw: RawResponse, nowMillis: number): Effect.Effect<ErrorBody, ServerError | InvalidResponseError> => {
  if (raw.status >= 500 || raw.status === 429) {
    return Effect.fail(
      new ServerError({
        url: raw.url,
        status: raw.status,
        excerpt: excerpt(raw.safeBody),
        retryAfterMillis: retryAfterMillis(raw.retryAfter, nowMillis, OAUTH_RETRY_AFTER_CAP_MILLIS),
        message: `The Kimi OAuth server is unavailable (HTTP ${raw.status} from ${raw.url}). It will be retried; ` +
          `if it persists, try again in a few minutes.`
      })
    )
  }
  const json = parseJson(raw.safeBody)
  return Schema.decodeUnknownEffect(ErrorResponse)(json).pipe(
    Effect.mapError(() => invalid(raw, "a body that is not an RFC 6749 error"))
  )
}

const oauthError = (status: number, e: ErrorBody) =>
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

/** An http(s) URL without control characters or spaces, normalised; else `undefined`. */
const printableHttpUrl = (u: unknown): string | undefined => {
  // eslint-disable-next-line no-control-regex
  if (typeof u !== "string" || u.length > 2048 || /[\s\u0000-\u001f\u007f-\u009f]/.test(u)) return undefined
  try {
    const url = new URL(u)
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : undefined
  } catch {
    return undefined
  }
}

/** A user code as RFC 8628 section 6.1 has them: short, letters, digits, dashes and spaces. Printed to a terminal. */
const isUserCode = (u: unknown): u is string => typeof u === "string" && /^[A-Za-z0-9][A-Za-z0-9 -]{0,63}$/.test(u)

/** A positive finite number, also from a numeric string (some servers quote numbers). */
const positiveNumber = (u: unknown): number | undefined => {
  const n = typeof u === "string" && /^\s*\d+(\.\d+)?\s*$/.test(u) ? Number(u) : u
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? n : undefined
}

/** `token_type` and `scope` are stored and shown: keep them printable, else use the defaults. */
const tokenType = (u: unknown) => (typeof u === "string" && /^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(u) ? u : "Bearer")
const scopeOf = (u: unknown) => (typeof u === "string" && /^[\x21\x23-\x5b\x5d-\x7e ]{0,1024}$/.test(u) ? u.trim() : "")

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
 * Builds the client from the configuration, the device identity and an
 * `HttpClient` (use `FetchHttpClient.layer`: it works in Node and in Bun).
 */
export const make = Effect.gen(function*() {
  const settings = yield* KimiAuthConfig
  const identity = yield* DeviceIdentity
  const http = yield* HttpClient.HttpClient
  const timeoutMillis = Duration.toMillis(settings.requestTimeout)
  /** A device login is issued by the configured host, for the configured region. */
  const loginIssuer = { oauthHost: settings.oauthHost, apiBaseUrl: settings.apiBaseUrl, region: settings.region }

  const post = (endpoint: string, form: Record<string, string | Redacted.Redacted<string>>, oauthHost: string = settings.oauthHost) => {
    const url = `${oauthHost}${endpoint}`
    const secrets = Object.values(form).flatMap((v) => (Redacted.isRedacted(v) ? [Redacted.value(v)] : []))
    const request = HttpClientRequest.post(url).pipe(
      HttpClientRequest.setHeaders(identity.headers),
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams(form)
    )
    const networkError = (reason: string, detail: string, cause?: unknown) => {
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
    return Effect.gen(function*() {
      const response = yield* noRedirects(http.execute(request))
      if (response.status >= 300 && response.status < 400) {
        // Read a little of it only to end the exchange cleanly; never follow it.
        yield* Effect.ignore(readTextCapped(response, 4096))
        const target = originOf(response.headers["location"], url)
        const downgrade = url.startsWith("https:") && target?.startsWith("http:")
        return yield* Effect.fail(
          invalidAt(
            url,
            response.status,
            "",
            `a redirect${target ? ` to ${target}` : ""}, which was refused${
              downgrade ? " (it would downgrade https to plain http)" : ""
            }: OAuth calls never follow redirects, since the device headers and the secrets would go along`,
            "redirect"
          )
        )
      }
      if (response.url !== "" && !sameResource(response.url, url)) {
        // A custom HttpClient that follows redirects by itself: the answer comes from elsewhere.
        return yield* Effect.fail(
          invalidAt(url, response.status, "", `an answer from ${originOf(response.url, url) ?? "another URL"} after a redirect, which was refused`, "redirect")
        )
      }
      const body = yield* readTextCapped(response, OAUTH_BODY_LIMIT_BYTES).pipe(
        Effect.catchTag("BodyTooLargeError", (e) =>
          Effect.fail(
            invalidAt(
              url,
              response.status,
              "",
              `an answer too large for an OAuth response (${
                e.declaredBytes !== undefined ? `${e.declaredBytes} bytes declared` : "more than"
              } the ${OAUTH_BODY_LIMIT_BYTES / 1024} KiB allowed; the request was aborted)`,
              "too-large"
            )
          ))
      )
      return {
        url,
        status: response.status,
        retryAfter: response.headers["retry-after"],
        body,
        safeBody: redactSecrets(body, secrets)
      } satisfies RawResponse
    }).pipe(
      Effect.tap((raw) =>
        Effect.logDebug(`oauth: POST ${endpoint} -> HTTP ${raw.status}`).pipe(
          Effect.annotateLogs({ grant: typeof form["grant_type"] === "string" ? form["grant_type"] : "device_authorization" })
        )
      ),
      // One deadline for the answer and its whole body: a slow drip ends here too (the read is interrupted, the request aborted).
      Effect.timeoutOrElse({
        duration: settings.requestTimeout,
        orElse: () =>
          Effect.fail(
            new NetworkError({
              url,
              reason: "timeout",
              message: `The Kimi OAuth server at ${url}${proxyNote(undefined, url)} did not answer within ${
                Math.round(timeoutMillis / 1000)
              } s. Check your connection; it will be retried.`
            })
          )
      }),
      // Never keep the HttpClientError: it holds the request, and the request its body (the secrets).
      Effect.catchTag("HttpClientError", (cause) => Effect.fail(networkError(transportReason(cause), cause.reason._tag, cause.reason.cause)))
    )
  }

  /**
   * Decodes a 2xx token response. Tokens must be bearer tokens; an absurd or
   * missing lifetime becomes {@link DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS}.
   * `sent` is the refresh token of a refresh call: kept when the answer has
   * none, and the answer's new one, when valid, is handed back in the error
   * if the access token is not usable (it rotated: the sent one is spent).
   */
  const decodeTokens = (
    raw: RawResponse,
    sent: Redacted.Redacted<string> | undefined,
    issuer: { readonly oauthHost: string; readonly apiBaseUrl: string; readonly region: KimiRegion }
  ) =>
    Effect.gen(function*() {
      const r = yield* jsonObject(raw, "a token response")
      const rawRefresh = r["refresh_token"]
      let refresh: Redacted.Redacted<string> | undefined = sent
      let rotated: Redacted.Redacted<string> | undefined
      if (rawRefresh !== undefined && rawRefresh !== null && rawRefresh !== "") {
        if (!isBearerToken(rawRefresh)) {
          return yield* Effect.fail(
            invalid(raw, "a refresh_token that is not a valid bearer token (RFC 6750); nothing was stored", "invalid-token")
          )
        }
        refresh = Redacted.make(rawRefresh)
        if (sent === undefined || rawRefresh !== Redacted.value(sent)) rotated = refresh
      }
      const access = r["access_token"]
      if (!isBearerToken(access)) {
        return yield* Effect.fail(
          invalid(
            raw,
            access === undefined || access === null || access === ""
              ? "a JSON body that is not a valid token response (no access_token)"
              : "an access_token that is not a valid bearer token (RFC 6750); it was not stored",
            access === undefined || access === null || access === "" ? "malformed" : "invalid-token",
            sent !== undefined ? rotated : undefined
          )
        )
      }
      if (refresh === undefined) return yield* Effect.fail(invalid(raw, "a token response without a refresh_token"))
      const rawLifetime = r["expires_in"]
      const lifetime = typeof rawLifetime === "string" && /^\s*-?\d+(\.\d+)?([eE][+-]?\d+)?\s*$/.test(rawLifetime)
        ? Number(rawLifetime)
        : rawLifetime
      if (lifetime !== undefined && lifetime !== null && typeof lifetime !== "number") {
        return yield* Effect.fail(
          invalid(
            raw,
            "a JSON body that is not a valid token response (expires_in is not a number)",
            "malformed",
            sent !== undefined ? rotated : undefined
          )
        )
      }
      const now = yield* Clock.currentTimeMillis
      // Zero, negative, not finite or more than a year: not believed, refreshed soon instead (as for a missing one).
      const expiresIn = sanitizeLifetime(lifetime) ?? DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS
      return new TokenSet({
        accessToken: Redacted.make(access),
        refreshToken: refresh,
        tokenType: tokenType(r["token_type"]),
        expiresIn,
        scope: scopeOf(r["scope"]),
        expiresAt: Math.floor(now / 1000) + expiresIn,
        oauthHost: issuer.oauthHost,
        apiBaseUrl: issuer.apiBaseUrl,
        region: issuer.region
      })
    })

  const decodeDeviceAuthorization = (raw: RawResponse) =>
    Effect.gen(function*() {
      const r = yield* jsonObject(raw, "a device authorization response")
      const deviceCode = r["device_code"]
      if (!isBearerToken(deviceCode)) {
        return yield* Effect.fail(invalid(raw, "a missing or malformed device_code", "invalid-token"))
      }
      const userCode = r["user_code"]
      if (!isUserCode(userCode)) return yield* Effect.fail(invalid(raw, "a missing or unprintable user_code"))
      const verificationUri = printableHttpUrl(r["verification_uri"])
      if (verificationUri === undefined) {
        return yield* Effect.fail(invalid(raw, "a verification_uri that is not an http(s) URL"))
      }
      const expiresIn = positiveNumber(r["expires_in"])
      if (expiresIn === undefined) return yield* Effect.fail(invalid(raw, "a missing or non-positive expires_in"))
      const interval = positiveNumber(r["interval"])
      return {
        deviceCode: Redacted.make(deviceCode),
        userCode,
        verificationUri,
        verificationUriComplete: printableHttpUrl(r["verification_uri_complete"]),
        expiresIn: Math.min(expiresIn, MAX_DEVICE_CODE_LIFETIME_SECONDS),
        interval: interval === undefined ? DEFAULT_POLL_INTERVAL_SECONDS : Math.min(Math.max(interval, 1), MAX_POLL_INTERVAL_SECONDS)
      } satisfies DeviceAuthorization
    })

  const requestDeviceAuthorization = post("/api/oauth/device_authorization", { client_id: settings.clientId }).pipe(
    Effect.flatMap((raw) =>
      raw.status >= 200 && raw.status < 300
        ? decodeDeviceAuthorization(raw)
        : Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => decodeFailure(raw, now)),
          Effect.flatMap((e) => Effect.fail(oauthError(raw.status, e)))
        )
    ),
    Effect.withSpan("OAuthClient.requestDeviceAuthorization")
  )

  const pollDeviceToken = (deviceCode: Redacted.Redacted<string>) =>
    post("/api/oauth/token", {
      client_id: settings.clientId,
      device_code: deviceCode,
      grant_type: DEVICE_CODE_GRANT_TYPE
    }).pipe(
      Effect.flatMap((raw): Effect.Effect<PollOutcome, OAuthCallError | AccessDeniedError | DeviceCodeExpiredError> => {
        if (raw.status >= 200 && raw.status < 300) {
          return decodeTokens(raw, undefined, loginIssuer).pipe(Effect.map((tokens): PollOutcome => ({ _tag: "Authorized", tokens })))
        }
        return Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => decodeFailure(raw, now)),
          Effect.flatMap((e): Effect.Effect<PollOutcome, OAuthError | AccessDeniedError | DeviceCodeExpiredError> => {
            switch (e.error) {
              case "authorization_pending":
                return Effect.succeed({ _tag: "Pending" })
              case "slow_down":
                return Effect.succeed({ _tag: "SlowDown" })
              case "access_denied":
                return Effect.fail(
                  new AccessDeniedError({
                    message: "The login was refused in the browser (access_denied). " +
                      "Run `kimi-auth login` again and approve the request to log in."
                  })
                )
              case "expired_token":
                return Effect.fail(
                  new DeviceCodeExpiredError({
                    message: "The login code expired before it was approved. Run `kimi-auth login` again " +
                      "and approve the new code within its time limit."
                  })
                )
              default:
                return Effect.fail(oauthError(raw.status, e))
            }
          })
        )
      }),
      Effect.withSpan("OAuthClient.pollDeviceToken")
    )

  const refreshToken = (refreshToken: Redacted.Redacted<string>, stored?: Issuer & { readonly region?: KimiRegion | undefined }) => {
    const hosts = issuerFor(settings, stored)
    const issuer = { ...hosts, region: stored?.region ?? settings.region }
    return post("/api/oauth/token", {
      client_id: settings.clientId,
      grant_type: "refresh_token",
      refresh_token: refreshToken
    }, hosts.oauthHost).pipe(
      Effect.flatMap((raw): Effect.Effect<TokenSet, OAuthCallError | InvalidGrantError> => {
        if (raw.status >= 200 && raw.status < 300) return decodeTokens(raw, refreshToken, issuer)
        const rejected = (description: string | undefined) =>
          new InvalidGrantError({
            status: raw.status,
            errorDescription: description ? excerpt(description, 300) : undefined,
            message: `The stored Kimi login was rejected by the server (HTTP ${raw.status}${
              description ? `: ${excerpt(description)}` : ""
            }); ${LOGIN_HINT}.`
          })
        return Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => decodeFailure(raw, now)),
          Effect.catchTag("InvalidResponseError", (e): Effect.Effect<never, InvalidResponseError | InvalidGrantError> =>
            // A 401 without a proper error body still means the grant was refused.
            raw.status === 401 ? Effect.fail(rejected(undefined)) : Effect.fail(e)),
          Effect.flatMap((e): Effect.Effect<never, OAuthError | InvalidGrantError> =>
            e.error === "invalid_grant" || (raw.status === 401 && e.error !== "invalid_client")
              ? Effect.fail(rejected(e.error_description ?? undefined))
              : Effect.fail(oauthError(raw.status, e))
          )
        )
      }),
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
