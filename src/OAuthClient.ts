/**
 * The three HTTP calls of Kimi's OAuth server, one function per spec step:
 *
 * - RFC 8628 section 3.1/3.2: device authorization request and response;
 * - RFC 8628 section 3.4/3.5: device access token request, one poll;
 * - RFC 6749 section 6: refreshing an access token.
 *
 * Bodies are form-encoded with `Accept: application/json`, every call carries
 * the device identity headers and a timeout. Responses are decoded with
 * `effect/Schema`; RFC 6749 section 5.2 error bodies become tagged errors.
 * Anything else (an HTML error page, malformed JSON, a missing field, an empty
 * body) becomes {@link InvalidResponseError} with the status and a token-free
 * excerpt: never a crash, never a hang.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as HttpClient from "effect/http/HttpClient"
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
  ServerError
} from "./Errors.js"
import { KimiAuthConfig } from "./KimiAuthConfig.js"
import type { KimiRegion } from "./Region.js"
import { type Issuer, issuerFor } from "./ResolveSettings.js"
import { TokenSet } from "./TokenSet.js"

/** RFC 8628 section 3.4: the grant type of a device access token request. */
export const DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"

/** RFC 8628 section 3.2: the interval to use when the server sends none. */
export const DEFAULT_POLL_INTERVAL_SECONDS = 5

/** Lifetime assumed when a token response omits `expires_in` (RFC 6749 makes it optional). */
export const DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS = 900

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
const Positive = Schema.Finite.check(Schema.isGreaterThan(0))

const DeviceAuthorizationResponse = Schema.Struct({
  device_code: NonEmpty,
  user_code: NonEmpty,
  verification_uri: NonEmpty,
  verification_uri_complete: Schema.optionalKey(Schema.NullOr(Schema.String)),
  expires_in: Positive,
  interval: Schema.optionalKey(Schema.NullOr(Positive))
})

const TokenResponse = Schema.Struct({
  access_token: NonEmpty,
  refresh_token: Schema.optionalKey(Schema.NullOr(Schema.String)),
  token_type: Schema.optionalKey(Schema.NullOr(Schema.String)),
  expires_in: Schema.optionalKey(Schema.NullOr(Positive)),
  scope: Schema.optionalKey(Schema.NullOr(Schema.String))
})

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
   * replaced by `<redacted>`: a server that echoes them back in an error must
   * not put them into our messages. Used for everything but decoding a success.
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

/** Replaces every occurrence of each secret (and its JSON-escaped form) in `text`. */
const scrubSecrets = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text
  for (const secret of secrets) {
    if (secret.length === 0) continue
    out = out.split(secret).join("<redacted>")
    const escaped = JSON.stringify(secret).slice(1, -1)
    if (escaped !== secret) out = out.split(escaped).join("<redacted>")
  }
  return out
}

const invalid = (raw: RawResponse, what: string) =>
  new InvalidResponseError({
    url: raw.url,
    status: raw.status,
    excerpt: excerpt(raw.safeBody),
    message: `The Kimi OAuth server answered ${raw.url} with HTTP ${raw.status} and ${what}: ${excerpt(raw.safeBody)}. ` +
      `This is not a valid OAuth response; try again later, and check the OAuth host setting (KIMI_OAUTH_HOST) if it persists.`
  })

const parseRetryAfter = (value: string | undefined, nowMillis: number): number | undefined => {
  if (value === undefined) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 3_600_000)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, Math.min(date - nowMillis, 3_600_000))
}

/** Decodes a 2xx body with `schema`, or explains why it is not valid. */
const decodeOk = <S extends Schema.Top>(raw: RawResponse, schema: S, what: string) => {
  const json = parseJson(raw.body)
  if (json === undefined) return Effect.fail(invalid(raw, `a body that is not JSON (expected ${what})`))
  return Schema.decodeUnknownEffect(schema as any)(json).pipe(
    Effect.mapError(() => invalid(raw, `a JSON body that is not a valid ${what}`))
  ) as Effect.Effect<S["Type"], InvalidResponseError>
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
        retryAfterMillis: parseRetryAfter(raw.retryAfter, nowMillis),
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
    error: e.error,
    errorDescription: e.error_description ?? undefined,
    message: `The Kimi OAuth server refused the request: ${excerpt(e.error, 60)}${
      e.error_description ? ` (${excerpt(e.error_description)})` : ""
    }. ${
      e.error === "invalid_client"
        ? "The OAuth client id is not accepted; remove any custom clientId setting."
        : "Try again; if it persists, report it with this message."
    }`
  })

const isHttpUrl = (s: string) => {
  try {
    const u = new URL(s)
    return u.protocol === "https:" || u.protocol === "http:"
  } catch {
    return false
  }
}

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

  const post = (
    endpoint: string,
    form: Record<string, string | Redacted.Redacted<string>>,
    oauthHost: string = settings.oauthHost
  ) => {
    const url = `${oauthHost}${endpoint}`
    const secrets = Object.values(form).flatMap((v) => (Redacted.isRedacted(v) ? [Redacted.value(v)] : []))
    const request = HttpClientRequest.post(url).pipe(
      HttpClientRequest.setHeaders(identity.headers),
      HttpClientRequest.acceptJson,
      HttpClientRequest.bodyUrlParams(form)
    )
    return http.execute(request).pipe(
      Effect.flatMap((response) =>
        Effect.map(response.text, (body): RawResponse => ({
          url,
          status: response.status,
          retryAfter: response.headers["retry-after"],
          body,
          safeBody: scrubSecrets(body, secrets)
        }))
      ),
      Effect.tap((raw) =>
        Effect.logDebug(`oauth: POST ${endpoint} -> HTTP ${raw.status}`).pipe(
          Effect.annotateLogs({ grant: typeof form["grant_type"] === "string" ? form["grant_type"] : "device_authorization" })
        )
      ),
      Effect.timeoutOrElse({
        duration: settings.requestTimeout,
        orElse: () =>
          Effect.fail(
            new NetworkError({
              url,
              message: `The Kimi OAuth server at ${url} did not answer within ${
                Math.round(timeoutMillis / 1000)
              } s. Check your connection; it will be retried.`
            })
          )
      }),
      Effect.catchTag("HttpClientError", (cause) =>
        Effect.fail(
          new NetworkError({
            url,
            cause,
            message: `Cannot reach the Kimi OAuth server at ${url} (${cause.reason._tag}). ` +
              `Check your connection and the OAuth host setting (KIMI_OAUTH_HOST); it will be retried.`
          })
        ))
    )
  }

  const toTokenSet = (
    r: typeof TokenResponse.Type,
    fallbackRefresh: Redacted.Redacted<string> | undefined,
    issuer: { readonly oauthHost: string; readonly apiBaseUrl: string; readonly region: KimiRegion }
  ) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const expiresIn = r.expires_in ?? DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS
      const refresh = r.refresh_token ? Redacted.make(r.refresh_token) : fallbackRefresh
      return { refresh, tokens: (refreshToken: Redacted.Redacted<string>) =>
        new TokenSet({
          accessToken: Redacted.make(r.access_token),
          refreshToken,
          tokenType: r.token_type ?? "Bearer",
          expiresIn,
          scope: r.scope ?? "",
          expiresAt: Math.floor(now / 1000) + expiresIn,
          oauthHost: issuer.oauthHost,
          apiBaseUrl: issuer.apiBaseUrl,
          region: issuer.region
        }) }
    })

  const requestDeviceAuthorization = post("/api/oauth/device_authorization", { client_id: settings.clientId }).pipe(
    Effect.flatMap((raw) =>
      raw.status >= 200 && raw.status < 300
        ? decodeOk(raw, DeviceAuthorizationResponse, "device authorization response").pipe(
          Effect.flatMap((r) =>
            isHttpUrl(r.verification_uri)
              ? Effect.succeed<DeviceAuthorization>({
                deviceCode: Redacted.make(r.device_code),
                userCode: r.user_code,
                verificationUri: r.verification_uri,
                verificationUriComplete: r.verification_uri_complete && isHttpUrl(r.verification_uri_complete)
                  ? r.verification_uri_complete
                  : undefined,
                expiresIn: r.expires_in,
                interval: r.interval ?? DEFAULT_POLL_INTERVAL_SECONDS
              })
              : Effect.fail(invalid(raw, "a verification_uri that is not an http(s) URL"))
          )
        )
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
          return decodeOk(raw, TokenResponse, "token response").pipe(
            Effect.flatMap((r) => toTokenSet(r, undefined, loginIssuer)),
            Effect.flatMap(({ refresh, tokens }) =>
              refresh === undefined
                ? Effect.fail(invalid(raw, "a token response without a refresh_token"))
                : Effect.succeed<PollOutcome>({ _tag: "Authorized", tokens: tokens(refresh) })
            )
          )
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
        if (raw.status >= 200 && raw.status < 300) {
          return decodeOk(raw, TokenResponse, "token response").pipe(
            Effect.flatMap((r) => toTokenSet(r, refreshToken, issuer)),
            Effect.map(({ refresh, tokens }) => tokens(refresh ?? refreshToken))
          )
        }
        const rejected = (description: string | undefined) =>
          new InvalidGrantError({
            status: raw.status,
            errorDescription: description,
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
