/**
 * What an answer of Kimi's OAuth server is, and whether its fields are
 * believable. {@link OAuthClient} sends the requests; this module reads what
 * came back, and trusts none of it:
 *
 * - {@link answerKind}: a 2xx is where tokens live, a 5xx or 429 is a server
 *   in trouble, anything else must be an RFC 6749 section 5.2 error body;
 * - {@link decodeTokens}, {@link decodeDeviceAuthorization},
 *   {@link decodeRefusal}: the three bodies, each either decoded or turned
 *   into an {@link InvalidResponseError} (garbage) whose excerpt holds no
 *   token;
 * - the field checks beside them: tokens must be RFC 6750 bearer tokens,
 *   lifetimes believable ({@link tokenLifetime}, {@link deviceCodeLifetime},
 *   {@link pollInterval}), user codes and verification URIs printable
 *   ({@link isUserCode}, {@link printableHttpUrl}), `token_type` and `scope`
 *   printable ({@link tokenTypeOf}, {@link scopeOf}).
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { excerpt, InvalidResponseError, ServerError } from "../Errors.js"
import { retryAfterMillis } from "../request/Authorize.js"
import type { KimiRegion } from "../light/Region.js"
import { TokenSet } from "../tokens/TokenSet.js"
import { isBearerToken, sanitizeLifetime } from "../light/TokenValidation.js"

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

/** The longest `Retry-After` an OAuth answer is taken at (the token manager fails fast past its own, shorter budget). */
export const OAUTH_RETRY_AFTER_CAP_MILLIS = 3_600_000

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

/** A response read to the end: status, headers we need, and the body text. */
export interface RawResponse {
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
  /**
   * Scrubs the secrets this request sent from one decoded value (a field of
   * an error body, after JSON decoding turned any escapes back into text).
   * Absent: nothing to scrub.
   */
  readonly scrub?: ((text: string) => string) | undefined
}

/** Who issued a login: the hosts and region stamped on the token set it yields. */
export interface IssuedBy {
  readonly oauthHost: string
  readonly apiBaseUrl: string
  readonly region: KimiRegion
}

// ---------------------------------------------------------------------------
// Field checks

/** An http(s) URL without control characters or spaces, normalised; else `undefined`. */
export const printableHttpUrl = (u: unknown): string | undefined => {
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
export const isUserCode = (u: unknown): u is string => typeof u === "string" && /^[A-Za-z0-9][A-Za-z0-9 -]{0,63}$/.test(u)

/** A positive finite number, also from a numeric string (some servers quote numbers). */
export const positiveNumber = (u: unknown): number | undefined => {
  const n = typeof u === "string" && /^\s*\d+(\.\d+)?\s*$/.test(u) ? Number(u) : u
  return typeof n === "number" && Number.isFinite(n) && n > 0 ? n : undefined
}

/** `token_type` is stored and shown: a short printable word, else `Bearer`. */
export const tokenTypeOf = (u: unknown): string => (typeof u === "string" && /^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(u) ? u : "Bearer")

/** `scope` is stored and shown: printable RFC 6749 scope characters (trimmed), else empty. */
export const scopeOf = (u: unknown): string =>
  typeof u === "string" && /^[\x21\x23-\x5b\x5d-\x7e ]{0,1024}$/.test(u) ? u.trim() : ""

/**
 * The lifetime of an access token from its `expires_in`, in seconds, or
 * `undefined` when the field is there but is no number (nor a numeric
 * string). Zero, negative, not finite or more than a year is not believed:
 * {@link DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS}, as for a missing one.
 */
export const tokenLifetime = (u: unknown): number | undefined => {
  const lifetime = typeof u === "string" && /^\s*-?\d+(\.\d+)?([eE][+-]?\d+)?\s*$/.test(u) ? Number(u) : u
  if (lifetime !== undefined && lifetime !== null && typeof lifetime !== "number") return undefined
  return sanitizeLifetime(lifetime) ?? DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS
}

/** A device code's lifetime from `expires_in`: positive, cut to {@link MAX_DEVICE_CODE_LIFETIME_SECONDS}; else `undefined`. */
export const deviceCodeLifetime = (u: unknown): number | undefined => {
  const seconds = positiveNumber(u)
  return seconds === undefined ? undefined : Math.min(seconds, MAX_DEVICE_CODE_LIFETIME_SECONDS)
}

/** Seconds between polls from `interval`: between 1 and {@link MAX_POLL_INTERVAL_SECONDS}, {@link DEFAULT_POLL_INTERVAL_SECONDS} when absent or unusable. */
export const pollInterval = (u: unknown): number => {
  const seconds = positiveNumber(u)
  return seconds === undefined ? DEFAULT_POLL_INTERVAL_SECONDS : Math.min(Math.max(seconds, 1), MAX_POLL_INTERVAL_SECONDS)
}

/** The refresh token a token answer leaves us with, and whether it is a new one (rotated). */
export type AnsweredRefresh =
  | { readonly ok: true; readonly refresh: Redacted.Redacted<string> | undefined; readonly rotated: Redacted.Redacted<string> | undefined }
  | { readonly ok: false }

/**
 * Reads `refresh_token` of a token answer against the one `sent` (none for a
 * device login): absent or empty keeps the sent one; a bearer token replaces
 * it (and is `rotated` when it differs); anything else is not `ok`.
 */
export const answeredRefresh = (u: unknown, sent: Redacted.Redacted<string> | undefined): AnsweredRefresh => {
  if (u === undefined || u === null || u === "") return { ok: true, refresh: sent, rotated: undefined }
  if (!isBearerToken(u)) return { ok: false }
  const refresh = Redacted.make(u)
  return { ok: true, refresh, rotated: sent === undefined || u !== Redacted.value(sent) ? refresh : undefined }
}

// ---------------------------------------------------------------------------
// What an answer is, and what may be shown of it

/** What a status makes of an answer: a `success` (a body to decode), an `unavailable` server, or a `refusal` (an RFC 6749 error body). */
export type AnswerKind = "success" | "unavailable" | "refusal"

/** Classifies an answer by its status: 2xx success, 5xx and 429 unavailable, anything else a refusal. */
export const answerKind = (status: number): AnswerKind =>
  status >= 200 && status < 300 ? "success" : status >= 500 || status === 429 ? "unavailable" : "refusal"

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
export const describeBody = (raw: RawResponse): string => {
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

/** Why an answer is not a valid OAuth response (see {@link InvalidResponseError}). */
export type InvalidReason = "too-large" | "redirect" | "invalid-token" | "malformed"

/** The {@link InvalidResponseError} for an answer of `url` with `status`, `shown` (a safe excerpt) and `what` was wrong. */
export const invalidAt = (
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

/** {@link invalidAt} for a body read: what is shown of it is {@link describeBody}. */
export const invalid = (raw: RawResponse, what: string, reason: InvalidReason = "malformed", rotated?: Redacted.Redacted<string>) =>
  invalidAt(raw.url, raw.status, describeBody(raw), what, reason, rotated)

// ---------------------------------------------------------------------------
// The three bodies

/** Parses a 2xx body as a JSON object, or explains why it is not one. */
const jsonObject = (raw: RawResponse, what: string): Effect.Effect<Record<string, unknown>, InvalidResponseError> => {
  const json = parseJson(raw.body)
  if (json === undefined) return Effect.fail(invalid(raw, `a body that is not JSON (expected ${what})`))
  if (!isObject(json)) return Effect.fail(invalid(raw, `a JSON body that is not an object (expected ${what})`))
  return Effect.succeed(json)
}

const NonEmpty = Schema.String.check(Schema.isNonEmpty())

/** RFC 6749 section 5.2 error body. */
const ErrorResponse = Schema.Struct({
  error: NonEmpty,
  error_description: Schema.optionalKey(Schema.NullOr(Schema.String)),
  error_uri: Schema.optionalKey(Schema.NullOr(Schema.String))
})

/** An RFC 6749 section 5.2 error body, decoded. */
export type ErrorBody = typeof ErrorResponse.Type

/**
 * Reads a non-2xx answer: an `unavailable` one (5xx/429) is a
 * {@link ServerError} (with its `Retry-After`, taken at most at
 * {@link OAUTH_RETRY_AFTER_CAP_MILLIS}), a refusal must be an RFC 6749
 * section 5.2 error body, else it is invalid. Reads only the scrubbed body.
 */
export const decodeRefusal = (raw: RawResponse): Effect.Effect<ErrorBody, ServerError | InvalidResponseError> =>
  answerKind(raw.status) === "unavailable"
    ? Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.fail(
        new ServerError({
          url: raw.url,
          status: raw.status,
          excerpt: excerpt(raw.safeBody),
          retryAfterMillis: retryAfterMillis(raw.retryAfter, now, OAUTH_RETRY_AFTER_CAP_MILLIS),
          message: `The Kimi OAuth server is unavailable (HTTP ${raw.status} from ${raw.url}). It will be retried; ` +
            `if it persists, try again in a few minutes.`
        })
      ))
    : Schema.decodeUnknownEffect(ErrorResponse)(parseJson(raw.safeBody)).pipe(
      Effect.mapError(() => invalid(raw, "a body that is not an RFC 6749 error")),
      Effect.map((e) => scrubbedError(e, raw.scrub))
    )

/** An error body with each of its kept fields scrubbed after decoding (`scrub`, see {@link RawResponse}). */
export const scrubbedError = (e: ErrorBody, scrub: ((text: string) => string) | undefined): ErrorBody => {
  if (scrub === undefined) return e
  const field = (v: string | null) => (typeof v === "string" ? scrub(v) : v)
  return {
    error: scrub(e.error),
    ...(e.error_description !== undefined ? { error_description: field(e.error_description) } : {}),
    ...(e.error_uri !== undefined ? { error_uri: field(e.error_uri) } : {})
  }
}

const isBlank = (u: unknown) => u === undefined || u === null || u === ""

/**
 * Decodes a 2xx token response. Tokens must be bearer tokens; an absurd or
 * missing lifetime becomes {@link DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS}.
 * `sent` is the refresh token of a refresh call: kept when the answer has
 * none, and the answer's new one, when valid, is handed back in the error
 * if the access token is not usable (it rotated: the sent one is spent).
 * The token set is stamped with `issuer`.
 */
export const decodeTokens = (raw: RawResponse, sent: Redacted.Redacted<string> | undefined, issuer: IssuedBy) =>
  Effect.gen(function*() {
    const r = yield* jsonObject(raw, "a token response")
    const answered = answeredRefresh(r["refresh_token"], sent)
    if (!answered.ok) {
      return yield* Effect.fail(
        invalid(raw, "a refresh_token that is not a valid bearer token (RFC 6750); nothing was stored", "invalid-token")
      )
    }
    // What a refresh hands back with a failure: the rotated refresh token, the only one still good.
    const rotated = sent !== undefined ? answered.rotated : undefined
    const access = r["access_token"]
    if (!isBearerToken(access)) {
      return yield* Effect.fail(
        isBlank(access)
          ? invalid(raw, "a JSON body that is not a valid token response (no access_token)", "malformed", rotated)
          : invalid(raw, "an access_token that is not a valid bearer token (RFC 6750); it was not stored", "invalid-token", rotated)
      )
    }
    const refresh = answered.refresh
    if (refresh === undefined) return yield* Effect.fail(invalid(raw, "a token response without a refresh_token"))
    const expiresIn = tokenLifetime(r["expires_in"])
    if (expiresIn === undefined) {
      return yield* Effect.fail(
        invalid(raw, "a JSON body that is not a valid token response (expires_in is not a number)", "malformed", rotated)
      )
    }
    const now = yield* Clock.currentTimeMillis
    return new TokenSet({
      accessToken: Redacted.make(access),
      refreshToken: refresh,
      tokenType: tokenTypeOf(r["token_type"]),
      expiresIn,
      scope: scopeOf(r["scope"]),
      expiresAt: Math.floor(now / 1000) + expiresIn,
      oauthHost: issuer.oauthHost,
      apiBaseUrl: issuer.apiBaseUrl,
      region: issuer.region
    })
  })

/** Decodes a 2xx device authorization response (RFC 8628 section 3.2): every field checked, lifetimes cut to believable. */
export const decodeDeviceAuthorization = (raw: RawResponse) =>
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
    const expiresIn = deviceCodeLifetime(r["expires_in"])
    if (expiresIn === undefined) return yield* Effect.fail(invalid(raw, "a missing or non-positive expires_in"))
    return {
      deviceCode: Redacted.make(deviceCode),
      userCode,
      verificationUri,
      verificationUriComplete: printableHttpUrl(r["verification_uri_complete"]),
      expiresIn,
      interval: pollInterval(r["interval"])
    } satisfies DeviceAuthorization
  })
