/**
 * Authorizing one Kimi API request: the one core behind the OpenCode
 * plugin's `fetch`, the AI SDK's `fetch` and the Effect `HttpClient` layer.
 * Each of those only adapts it to its host's request and response types.
 *
 * The steps, in order:
 * 1. a valid access token from the token source (refreshed when due);
 * 2. the request sent with `Authorization: Bearer …` and the identity headers;
 * 3. a `401` healed once: one forced refresh, one retry, and only with a
 *    token different from the rejected one (no loops);
 * 4. a refusal read from the answer and told apart from an auth failure,
 *    never refreshed and never retried here: the plan's quota is used up
 *    (`403` "You've reached your usage limit…", or `exceeded_current_quota_error`),
 *    or a plain rate limit (`429`, e.g. `rate_limit_reached_error`);
 * 5. for a quota answer, the account's `/usages` (when the host can read it)
 *    so the caller can say which window is used up and when it resets;
 * 6. every error answer (status 400 and up) handed back with the bearer token
 *    that was sent scrubbed from its body (its first {@link REFUSAL_BODY_LIMIT}
 *    bytes: error bodies are small), in every form a server may echo it
 *    (as is, URL-encoded, JSON-escaped, base64): hosts print error bodies
 *    (the AI SDK's message, OpenCode's error line), and an API that echoes
 *    the `Authorization` header must not make them print the token.
 *
 * It never throws into its host: a token failure, a failed send or a failed
 * `/usages` read becomes a value of {@link Outcome}.
 *
 * @since 0.2.0
 */
import { excerpt, redactSecrets } from "../Errors.js"
import { blockingWindow, describeReset, describeWindow, type KimiUsage } from "../api/Usage.js"

/** A token, or why there is none (`error`: the typed cause, for hosts that keep types). */
export type TokenResult =
  | { readonly ok: true; readonly token: string }
  | {
    readonly ok: false
    readonly status: number
    readonly code: string
    readonly message: string
    readonly error?: unknown
  }

/** Where tokens come from (the token manager, adapted by each host). */
export interface TokenSource {
  /** A valid access token (refreshing when due). */
  readonly getAccessToken: (signal?: AbortSignal) => Promise<TokenResult>
  /** A token other than `rejected` (forcing one refresh if needed). */
  readonly refreshAfterRejection: (rejected: string, signal?: AbortSignal) => Promise<TokenResult>
}

/** How the core sends a request and reads an answer in its host's types. */
export interface Transport<Res> {
  /** Sends the request with this bearer token (and the identity headers). May reject. */
  readonly send: (token: string) => Promise<Res>
  readonly status: (response: Res) => number
  /** A response header, `undefined` when absent. */
  readonly header: (response: Res, name: string) => string | undefined
  /** Reads at most `maxBytes` of the body as text; the body is consumed. */
  readonly readText: (response: Res, maxBytes: number) => Promise<string>
  /** The same response (status, headers) carrying `text` as its body, after {@link Transport.readText}. */
  readonly withText: (response: Res, text: string) => Res
  /** Releases the body of an answer that is not handed back. */
  readonly discard: (response: Res) => Promise<void>
}

/** Why Kimi refused a request that was authorized. */
export type Refusal =
  | {
    readonly _tag: "QuotaExceeded"
    readonly status: number
    /** `exceeded_current_quota_error`, or `usage_limit_reached` for the `403` usage-limit answer. */
    readonly code: string
    /** Kimi's own message, token-free and shortened. */
    readonly message: string
  }
  | {
    readonly _tag: "RateLimited"
    readonly status: number
    readonly code: string
    readonly message: string
    /** The `Retry-After` hint in milliseconds, when sent. */
    readonly retryAfterMillis: number | undefined
  }

/** What became of the request. */
export type Outcome<Res> =
  /** Kimi answered; hand the response on (any status but the refusals below). */
  | { readonly _tag: "Answered"; readonly response: Res }
  /** Kimi refused (quota or rate limit); the response still carries the body that was read. */
  | {
    readonly _tag: "Refused"
    readonly response: Res
    readonly refusal: Refusal
    /** The account's quota, read after a quota refusal when the host can; `undefined` otherwise. */
    readonly usage: KimiUsage | undefined
  }
  /** No token could be had (not logged in, storage, refresh failed): nothing was sent, or the retry was not. */
  | { readonly _tag: "NoToken"; readonly failure: Extract<TokenResult, { ok: false }> }
  /** Kimi rejected the token and the refresh gave the same one back: the login cannot be healed here. */
  | { readonly _tag: "Rejected"; readonly message: string }
  /** The transport failed (network, abort); `cause` is what it rejected with. */
  | { readonly _tag: "SendFailed"; readonly cause: unknown }

/** What {@link authorize} needs besides the transport. */
export interface AuthorizeOptions {
  readonly tokens: TokenSource
  readonly signal?: AbortSignal | undefined
  /** Reads the account's `/usages` with a token, for a quota refusal. Failures resolve `undefined`. */
  readonly readUsage?: ((token: string, signal?: AbortSignal) => Promise<KimiUsage | undefined>) | undefined
}

/** Bytes of a refusal's body read to classify it (error bodies are small). */
export const REFUSAL_BODY_LIMIT = 64 * 1024

/** What {@link Outcome} `Rejected` comes to, without the advice to log in again. */
export const REJECTED_DETAIL =
  "Kimi rejected the access token and no new one could be obtained (a token refreshed moments ago is not " +
  "refreshed again); check the API base URL and region (KIMI_CODE_BASE_URL)"

/** The message of {@link Outcome} `Rejected`. */
export const REJECTED_MESSAGE = `${REJECTED_DETAIL}, or log in again (\`opencode auth login\` in OpenCode, or \`kimi-auth login\`).`

/** The identity headers plus the bearer: what every Kimi API request carries. */
export const kimiHeaders = (
  identity: Readonly<Record<string, string>>,
  token: string
): Record<string, string> => ({ ...identity, authorization: `Bearer ${token}` })

/**
 * `Retry-After` (RFC 9110 10.2.3) as milliseconds: delta-seconds or an HTTP
 * date, at most `capMillis` (a day by default); `undefined` when absent or
 * unusable. The OAuth client and the API clients read it with this one rule.
 */
export const retryAfterMillis = (
  value: string | undefined,
  nowMillis: number = Date.now(),
  capMillis: number = 86_400_000
): number | undefined => {
  if (value === undefined || value.trim() === "") return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return seconds >= 0 ? Math.min(seconds * 1000, capMillis) : undefined
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - nowMillis), capMillis)
}

const errorFields = (text: string): { type?: string; code?: string; message?: string } => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return {}
  }
  if (typeof json !== "object" || json === null) return {}
  const e = (json as Record<string, unknown>)["error"]
  const from = typeof e === "object" && e !== null ? e as Record<string, unknown> : json as Record<string, unknown>
  const str = (v: unknown) => (typeof v === "string" ? v : undefined)
  const type = str(from["type"])
  const code = str(from["code"])
  const message = str(from["message"]) ?? (typeof e === "string" ? e : undefined)
  return {
    ...(type !== undefined ? { type } : {}),
    ...(code !== undefined ? { code } : {}),
    ...(message !== undefined ? { message } : {})
  }
}

const QUOTA_CODE = "exceeded_current_quota_error"
const USAGE_LIMIT = /usage limit|exceeded (your |the )?(current )?quota/i

/**
 * Tells a quota answer from a rate limit from anything else. Pure. A `403`
 * or `429` naming `exceeded_current_quota_error`, or a `403` saying "usage
 * limit", is the quota; any other `429` is a rate limit; everything else is
 * `undefined` (an ordinary answer, e.g. `403 access_terminated_error`).
 */
export const classifyRefusal = (
  status: number,
  bodyText: string,
  retryAfter?: string | undefined,
  nowMillis?: number
): Refusal | undefined => {
  if (status !== 403 && status !== 429) return undefined
  const f = errorFields(bodyText)
  const message = excerpt(f.message ?? bodyText, 300)
  if (f.type === QUOTA_CODE || f.code === QUOTA_CODE || (status === 403 && USAGE_LIMIT.test(f.message ?? bodyText))) {
    return { _tag: "QuotaExceeded", status, code: f.type === QUOTA_CODE || f.code === QUOTA_CODE ? QUOTA_CODE : "usage_limit_reached", message }
  }
  if (status === 429) {
    return {
      _tag: "RateLimited",
      status,
      code: f.type ?? f.code ?? "rate_limit_reached_error",
      message,
      retryAfterMillis: retryAfterMillis(retryAfter, nowMillis)
    }
  }
  return undefined
}

const safely = async <A>(f: () => Promise<A>): Promise<{ ok: true; value: A } | { ok: false; cause: unknown }> => {
  try {
    return { ok: true, value: await f() }
  } catch (cause) {
    return { ok: false, cause }
  }
}

const tokenFailure = (cause: unknown): TokenResult => ({
  ok: false,
  status: 500,
  code: "kimi_auth_error",
  message: `Getting a Kimi token failed: ${String(cause)}`,
  error: cause
})

/**
 * Authorizes and sends one Kimi API request (see the module comment for the
 * steps). Resolves with an {@link Outcome}; never rejects.
 */
export const authorize = async <Res>(transport: Transport<Res>, options: AuthorizeOptions): Promise<Outcome<Res>> => {
  const { tokens, signal } = options

  // An error answer: its body read (capped), the token scrubbed, then told apart (quota, rate limit, other).
  const judge = async (response: Res, token: string): Promise<Outcome<Res>> => {
    const status = transport.status(response)
    const read = await safely(() => transport.readText(response, REFUSAL_BODY_LIMIT))
    if (!read.ok) return { _tag: "SendFailed", cause: read.cause }
    const text = redactSecrets(read.value, [token])
    const kept = transport.withText(response, text)
    if (status !== 403 && status !== 429) return { _tag: "Answered", response: kept }
    const refusal = classifyRefusal(status, text, transport.header(response, "retry-after"))
    if (refusal === undefined) return { _tag: "Answered", response: kept }
    const usage = refusal._tag === "QuotaExceeded" && options.readUsage !== undefined
      ? await safely(() => options.readUsage!(token, signal)).then((r) => (r.ok ? r.value : undefined))
      : undefined
    return { _tag: "Refused", response: kept, refusal, usage }
  }

  // The common path (a token at hand, an ordinary answer) stays in this one frame: every request passes
  // here (BENCHMARKS.md, "Request overhead"), so no helper wraps the two awaits.
  let first: TokenResult
  try {
    first = await tokens.getAccessToken(signal)
  } catch (cause) {
    first = tokenFailure(cause)
  }
  if (!first.ok) return { _tag: "NoToken", failure: first }
  let response: Res
  try {
    response = await transport.send(first.token)
  } catch (cause) {
    return { _tag: "SendFailed", cause }
  }
  const status = transport.status(response)
  if (status !== 401) return status >= 400 ? judge(response, first.token) : { _tag: "Answered", response }

  // The server refused a token we believed valid (revoked, clock skew, rotated elsewhere): one refresh, one retry.
  await safely(() => transport.discard(response))
  const rejected = first.token
  let second: TokenResult
  try {
    second = await tokens.refreshAfterRejection(rejected, signal)
  } catch (cause) {
    second = tokenFailure(cause)
  }
  if (!second.ok) return { _tag: "NoToken", failure: second }
  if (second.token === rejected) return { _tag: "Rejected", message: REJECTED_MESSAGE }
  const retried = await safely(() => transport.send(second.token))
  if (!retried.ok) return { _tag: "SendFailed", cause: retried.cause }
  return transport.status(retried.value) >= 400 ? judge(retried.value, second.token) : { _tag: "Answered", response: retried.value }
}

/**
 * What to tell a person about a quota refusal: which window is used up and
 * when it resets (from `/usages` when it could be read), and Kimi's words.
 */
export const quotaMessage = (
  refusal: Extract<Refusal, { _tag: "QuotaExceeded" }>,
  usage: KimiUsage | undefined,
  nowMillis: number = Date.now()
): string => {
  const window = usage === undefined ? undefined : blockingWindow(usage)
  const which = window === undefined ? "" : ` (${describeWindow(window)})`
  const reset = window === undefined ? "" : describeReset(window, nowMillis)
  return `Your Kimi For Coding plan's usage limit is used up${which}${reset === "" ? "" : `; it ${reset}`}. ` +
    `This is not a login problem: wait for the reset, or see \`kimi-auth usage\`. Kimi said: ${refusal.message}`
}
