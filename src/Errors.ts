/**
 * The typed errors of opencode-kimi-auth.
 *
 * Every error is a tagged class whose `message` tells a person what happened
 * and what to do next. The errors that end in "log in again" also carry that
 * advice as data ({@link Advice}: `detail`, a {@link NextStep} `hint`,
 * `region`, `account`), so each edge words it for its host
 * ({@link messageIn}) instead of patching the text. None of them ever carries
 * a token: response excerpts are scrubbed by {@link excerpt} before they are
 * stored.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import type * as Redacted from "effect/Redacted"
import type { KimiRegion } from "./light/Region.js"

/**
 * What to run next, as data. Each edge words it for its host
 * (`src/edge/Advice.ts`): the CLI's command, OpenCode 1's
 * `opencode auth login -p <provider>`, OpenCode 2's `/connect`; the default
 * `message` of an error uses {@link defaultHintWords}.
 *
 * - `LogIn`: log in (again), at `region` when known.
 * - `RemovePath`: move the file at `path` away, then log in.
 */
export type { NextStep } from "./light/NextStep.js"
import type { NextStep } from "./light/NextStep.js"

/**
 * An error's advice as data, beside its `message`: what happened
 * (`detail`, without what to do), what to run next (`hint`), and which
 * region and account it concerns when known. An edge renders it with
 * {@link messageIn}; none patches another's text.
 */
export interface Advice {
  /** What happened, in words, without what to do about it. */
  readonly detail?: string | undefined
  /** What to run next. */
  readonly hint?: NextStep | undefined
  /** The Kimi region concerned, when known. */
  readonly region?: KimiRegion | undefined
  /** The account concerned, when known. */
  readonly account?: string | undefined
}

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
  /**
   * What failed, in words (`TransportError (ECONNREFUSED)`, `timeout`). The
   * OAuth client never keeps the underlying `HttpClientError` as `cause`: it
   * holds the request, and the request holds the secrets it sent.
   */
  readonly reason?: string | undefined
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
  /**
   * Why, for code: `too-large` (the body passed the size cap), `redirect` (a
   * 3xx, never followed), `invalid-token` (a token that is not an RFC 6750
   * bearer token), `malformed` (anything else). Absent means `malformed`.
   */
  readonly reason?: "too-large" | "redirect" | "invalid-token" | "malformed" | undefined
  /**
   * A refresh answer that rotated the refresh token but carried an unusable
   * access token: the new refresh token (the sent one is spent now), so the
   * caller can store it and keep the login. Redacted: never printed.
   */
  readonly rotatedRefreshToken?: Redacted.Redacted<string> | undefined
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
} & Advice> {}

/** The user refused the device authorization request (`access_denied`). */
export class AccessDeniedError extends Data.TaggedError("AccessDeniedError")<{
  readonly message: string
} & Advice> {}

/**
 * The device code expired before the user approved it (`expired_token`, or the
 * local deadline derived from `expires_in`).
 */
export class DeviceCodeExpiredError extends Data.TaggedError("DeviceCodeExpiredError")<{
  readonly message: string
} & Advice> {}

/**
 * The token endpoint rejected the refresh token (`invalid_grant`, or 401): it
 * was spent, revoked or expired.
 */
export class InvalidGrantError extends Data.TaggedError("InvalidGrantError")<{
  readonly status: number
  readonly errorDescription?: string | undefined
  readonly message: string
} & Advice> {}

/** Reading or writing the token storage failed for a reason other than absence. */
export class TokenStoreError extends Data.TaggedError("TokenStoreError")<{
  readonly path: string
  readonly message: string
  readonly cause?: unknown
} & Advice> {}

/**
 * The token file could not be parsed. It was moved aside to `movedTo` (never
 * deleted) and the user must log in again.
 */
export class CorruptTokenFileError extends Data.TaggedError("CorruptTokenFileError")<{
  readonly path: string
  readonly movedTo: string
  readonly message: string
} & Advice> {}

/** The cross-process refresh lock could not be taken within its bounded wait. */
export class LockTimeoutError extends Data.TaggedError("LockTimeoutError")<{
  readonly path: string
  readonly message: string
}> {}

/**
 * There is no usable login: no tokens stored, the refresh token is dead, or
 * the login is of the other region. The message says which command logs in
 * again; `hint` holds it as data.
 */
export class NotLoggedInError extends Data.TaggedError("NotLoggedInError")<{
  /**
   * Why: no tokens stored, the refresh token refused, a damaged file, or a
   * login of the other region (`loginRegion`) where `region` was asked for.
   */
  readonly reason: "no-tokens" | "refresh-rejected" | "corrupt-file" | "other-region"
  /** For `other-region`: the region the stored login belongs to. */
  readonly loginRegion?: KimiRegion | undefined
  readonly message: string
} & Advice> {}

/** Errors that may clear up by themselves: retried with backoff. */
export type TransientError = NetworkError | ServerError

/** True for the errors that are worth retrying. */
export const isTransient = (e: { readonly _tag: string }): e is TransientError =>
  e._tag === "NetworkError" || e._tag === "ServerError"

/**
 * Whether a failed OAuth call may have reached Kimi with its answer lost: no
 * answer came (the deadline passed, or the connection broke once the request
 * could have been sent). A refused connection, or any answer, says nothing
 * was done. A refresh or a device poll that failed so may have been served.
 */
export const answerMayBeLost = (error: { readonly _tag: string; readonly reason?: string | undefined }): boolean =>
  error._tag === "NetworkError" &&
  (error.reason === "timeout" || error.reason === "outcome-unknown" || /ECONNRESET|EPIPE|UND_ERR_SOCKET|UND_ERR_CLOSED/.test(error.reason ?? ""))

/**
 * The command a person runs to log in again, in an error's default
 * `message` when the region is not known: it names the CLI and OpenCode's two
 * real providers. Edges word the hint their own way ({@link messageIn}).
 */
export const LOGIN_HINT =
  "run `kimi-auth login` (or, in OpenCode, `opencode auth login -p kimi-code-plan-cn`; `-p kimi-code-plan-global` for kimi.ai)"

/** {@link LOGIN_HINT} for one region: the `kimi-auth login` flags and OpenCode's provider of that region. */
export const loginHintFor = (region: KimiRegion): string =>
  region === "global"
    ? "run `kimi-auth login --region global` (or `opencode auth login -p kimi-code-plan-global` in OpenCode)"
    : "run `kimi-auth login` (or `opencode auth login -p kimi-code-plan-cn` in OpenCode)"

/** How an edge words a {@link NextStep}: a clause such as "run `kimi-auth login`". */
export type HintWords = (hint: NextStep) => string

/** The default words of a hint, in every error's `message`: {@link LOGIN_HINT} (or its region's). */
export const defaultHintWords: HintWords = (hint) => {
  const login = hint.region === undefined ? LOGIN_HINT : loginHintFor(hint.region)
  return hint._tag === "RemovePath" ? `move ${hint.path} away, then ${login}` : login
}

/**
 * A message from what happened and what to do: `detail; clause.`, or, when
 * `detail` ends a sentence, `detail Clause.` (the clause as its own sentence).
 */
export const adviseWith = (detail: string, clause: string): string =>
  /[.!?]$/.test(detail)
    ? `${detail} ${clause.charAt(0).toUpperCase()}${clause.slice(1)}.`
    : `${detail}; ${clause}.`

/** The advice fields of an error and its default `message` ({@link defaultHintWords}). */
export const advised = (detail: string, hint: NextStep): Required<Pick<Advice, "detail" | "hint">> & { readonly message: string } => ({
  detail,
  hint,
  message: adviseWith(detail, defaultHintWords(hint))
})

/**
 * An error's message in an edge's words: its advice rendered with `words`
 * when it carries one, else its `message` as is.
 */
export const messageIn = (
  error: { readonly message: string; readonly detail?: string | undefined; readonly hint?: NextStep | undefined },
  words: HintWords
): string => error.detail !== undefined && error.hint !== undefined ? adviseWith(error.detail, words(error.hint)) : error.message

const TOKENISH =
  /("?(?:access[_-]?token|refresh[_-]?token|id[_-]?token|device[_-]?code|client[_-]?secret|password|token)"?\s*[:=]\s*"?)([^"&,\s}]+)/gi
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]+/gi
const JWT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g

/**
 * A short, single-line, token-free excerpt of a response body for error
 * messages: values of token fields (snake_case and camelCase), bearer
 * credentials and JWT-shaped strings are replaced with `<redacted>`, control
 * characters with spaces.
 */
export const excerpt = (body: string, max = 160): string => {
  const scrubbed = body
    .replace(TOKENISH, "$1<redacted>")
    .replace(BEARER, "$1<redacted>")
    .replace(JWT, "<redacted>")
    // eslint-disable-next-line no-control-regex
    .replace(/[\s\u0000-\u001f\u007f-\u009f]+/g, " ")
    .trim()
  if (scrubbed.length === 0) return "(empty body)"
  return scrubbed.length > max ? `${scrubbed.slice(0, max)}…` : scrubbed
}

const base64Cores = (secret: string): Array<string> => {
  // base64 of a text that contains the secret at any byte offset: the part of
  // the encoding that depends on the secret's bytes alone, for the 3 alignments.
  const bytes = new TextEncoder().encode(secret)
  const out: Array<string> = []
  for (const shift of [0, 1, 2]) {
    const padded = new Uint8Array(shift + bytes.length)
    padded.set(bytes, shift)
    let b64 = btoa(String.fromCharCode(...padded)).replace(/=+$/, "")
    if ((shift + bytes.length) % 3 !== 0) b64 = b64.slice(0, -1)
    const core = b64.slice([0, 2, 3][shift])
    if (core.length >= 8) out.push(core, core.replace(/\+/g, "-").replace(/\//g, "_"))
  }
  return out
}

/**
 * Every form in which a secret may come back inside a response body or an
 * error: as is, URL-encoded (both `encodeURIComponent` and form encoding, in
 * either hex case), JSON-escaped (with `\/` too), and base64 / base64url at
 * any alignment. Longest first, so a longer form is replaced before a part of it.
 */
export const secretForms = (secret: string): Array<string> => {
  if (secret.length === 0) return []
  const forms = new Set<string>([secret])
  const json = JSON.stringify(secret).slice(1, -1)
  forms.add(json)
  forms.add(json.replace(/\//g, "\\/"))
  for (const enc of [encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)]) {
    forms.add(enc)
    forms.add(enc.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()))
  }
  for (const core of base64Cores(secret)) forms.add(core)
  return [...forms].filter((f) => f.length > 0).sort((a, b) => b.length - a.length)
}

/** Replaces every form ({@link secretForms}) of each secret in `text` with `<redacted>`. */
export const redactSecrets = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text
  for (const secret of secrets) {
    for (const form of secretForms(secret)) out = out.split(form).join("<redacted>")
  }
  return out
}
