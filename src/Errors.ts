/**
 * The typed errors of opencode-kimi-auth.
 *
 * Every error is a tagged class whose `message` tells a person what happened
 * and what to do next. None of them ever carries a token: response excerpts
 * are scrubbed by {@link excerpt} before they are stored.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"

/**
 * The configuration cannot be used as given (for example a plain-`http:` OAuth
 * host that is not on loopback).
 */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly message: string
}> {}

/**
 * The server could not be reached, or did not answer in time. Transient: the
 * same request may succeed later.
 */
export class NetworkError extends Data.TaggedError("NetworkError")<{
  readonly url: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The server answered 5xx or 429. Transient: retried with backoff by the device
 * flow and the token manager. `retryAfterMillis` holds a `Retry-After` hint.
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly url: string
  readonly status: number
  readonly excerpt: string
  readonly retryAfterMillis?: number | undefined
  readonly message: string
}> {}

/**
 * The server answered something that is not what RFC 6749 / RFC 8628 say it
 * must: an HTML page, malformed JSON, a missing or mistyped field, an empty
 * body. Carries the status and a short, token-free excerpt.
 */
export class InvalidResponseError extends Data.TaggedError("InvalidResponseError")<{
  readonly url: string
  readonly status: number
  readonly excerpt: string
  readonly message: string
}> {}

/**
 * An RFC 6749 section 5.2 error that no more specific class covers
 * (`invalid_client`, `invalid_request`, `unsupported_grant_type`, …).
 */
export class OAuthError extends Data.TaggedError("OAuthError")<{
  readonly status: number
  readonly error: string
  readonly errorDescription?: string | undefined
  readonly message: string
}> {}

/** The user refused the device authorization request (`access_denied`). */
export class AccessDeniedError extends Data.TaggedError("AccessDeniedError")<{
  readonly message: string
}> {}

/**
 * The device code expired before the user approved it (`expired_token`, or the
 * local deadline derived from `expires_in`).
 */
export class DeviceCodeExpiredError extends Data.TaggedError("DeviceCodeExpiredError")<{
  readonly message: string
}> {}

/**
 * The token endpoint rejected the refresh token (`invalid_grant`, or 401): it
 * was spent, revoked or expired.
 */
export class InvalidGrantError extends Data.TaggedError("InvalidGrantError")<{
  readonly status: number
  readonly errorDescription?: string | undefined
  readonly message: string
}> {}

/** Reading or writing the token storage failed for a reason other than absence. */
export class TokenStoreError extends Data.TaggedError("TokenStoreError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
}> {}

/**
 * The token file could not be parsed. It was moved aside to `movedTo` (never
 * deleted) and the user must log in again.
 */
export class CorruptTokenFileError extends Data.TaggedError("CorruptTokenFileError")<{
  readonly path: string
  readonly movedTo: string
  readonly message: string
}> {}

/** The cross-process refresh lock could not be taken within its bounded wait. */
export class LockTimeoutError extends Data.TaggedError("LockTimeoutError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * There is no usable login: no tokens stored, or the refresh token is dead.
 * The message says which command logs in again.
 */
export class NotLoggedInError extends Data.TaggedError("NotLoggedInError")<{
  readonly reason: "no-tokens" | "refresh-rejected" | "corrupt-file"
  readonly message: string
}> {}

/** Errors that may clear up by themselves: retried with backoff. */
export type TransientError = NetworkError | ServerError

/** True for the errors that are worth retrying. */
export const isTransient = (e: { readonly _tag: string }): e is TransientError =>
  e._tag === "NetworkError" || e._tag === "ServerError"

/** The command a person runs to log in again, quoted in every `NotLoggedInError`. */
export const LOGIN_HINT = "run `kimi-auth login` (or `opencode auth login -p kimi` in OpenCode)"

const TOKENISH = /("?(?:access_token|refresh_token|id_token|device_code)"?\s*[:=]\s*"?)([^"&,\s}]+)/gi
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]+/gi
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g

/**
 * A short, single-line, token-free excerpt of a response body for error
 * messages: values of token fields, bearer credentials and JWT-shaped strings
 * are replaced with `<redacted>`.
 */
export const excerpt = (body: string, max = 160): string => {
  const scrubbed = body
    .replace(TOKENISH, "$1<redacted>")
    .replace(BEARER, "$1<redacted>")
    .replace(JWT, "<redacted>")
    .replace(/\s+/g, " ")
    .trim()
  if (scrubbed.length === 0) return "(empty body)"
  return scrubbed.length > max ? `${scrubbed.slice(0, max)}…` : scrubbed
}
