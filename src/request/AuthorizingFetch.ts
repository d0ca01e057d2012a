/**
 * The authorizing `fetch`: the {@link authorize} core adapted to the Fetch
 * API, for the OpenCode plugin, the AI SDK provider and the promise facade.
 *
 * - The AI SDK passes `Authorization: Bearer <placeholder apiKey>` in
 *   `init.headers`; it is overwritten.
 * - The request body is made replayable before the first send (a stream is
 *   read into memory once), so the retry sends the same bytes.
 * - Failures of our own (not logged in, storage, network during refresh)
 *   become an OpenAI-style JSON error `Response` whose message says what to
 *   do. A quota refusal becomes a `403` with a message that names the used-up
 *   window and its reset (never a `429`, which the AI SDK and OpenCode would
 *   retry in vain); a plain rate limit passes through as Kimi sent it.
 * - Only a failure of the underlying `fetch` itself (network, abort) rejects,
 *   with that fetch's own error, as any `fetch` does.
 * - With `apiBaseUrl`, requests to anything else pass through untouched:
 *   no bearer, no identity headers, no token lookup.
 *
 * @since 0.1.0
 */
import { envFetch } from "../net/EnvFetch.js"
import { readWebTextPrefix } from "../net/HttpBody.js"
import { authorize, type Outcome, quotaMessage, type TokenResult, type TokenSource, type Transport } from "./Authorize.js"
import { isBelowApiBase } from "./ApiBase.js"
import type { KimiUsage } from "../api/Usage.js"
import { readUsageWithFetch } from "../api/UsageReader.js"

export type { TokenResult } from "./Authorize.js"

/** What the wrapper needs from the token manager. */
export interface KimiFetchDeps extends TokenSource {
  /** Identity headers (`X-Msh-*`, `User-Agent`) added to every Kimi request. */
  readonly headers: Readonly<Record<string, string>>
  /** The underlying fetch; `globalThis.fetch` by default (honouring `HTTPS_PROXY` / `NO_PROXY` on Node: `EnvFetch.ts`). */
  readonly fetch?: typeof globalThis.fetch | undefined
  /**
   * The Kimi API base (`https://api.kimi.com/coding/v1`), or a function giving
   * the current one (it follows the login's region). When set, only requests
   * below it are authorized, and a quota refusal reads `{base}/usages` to say
   * when the quota resets. Unset: every request is authorized.
   */
  readonly apiBaseUrl?: string | (() => string) | undefined
  /** The message of the `401` answered when Kimi rejects the token and no other one can be had. */
  readonly rejectedMessage?: string | undefined
}

/** Marks the error responses this package makes (the value is the error code). */
export const ERROR_HEADER = "x-kimi-auth-error"

/** An OpenAI-compatible error response the AI SDK reports with its message. */
export const errorResponse = (status: number, code: string, message: string): Response =>
  new Response(JSON.stringify({ error: { message, type: code, code } }), {
    status,
    headers: { "content-type": "application/json", [ERROR_HEADER]: code }
  })

type Body = NonNullable<RequestInit["body"]>

const isStream = (b: unknown): b is ReadableStream<Uint8Array> =>
  typeof b === "object" && b !== null && typeof (b as ReadableStream).getReader === "function"

/** Reads a one-shot body into memory so it can be sent twice. */
const replayable = async (body: RequestInit["body"]): Promise<Body | undefined> =>
  body == null ? undefined : isStream(body) ? new Uint8Array(await new Response(body).arrayBuffer()) : body

const isPlainRecord = (h: unknown): h is Record<string, string> =>
  typeof h === "object" && h !== null && !Array.isArray(h) && Object.getPrototypeOf(h) === Object.prototype

/** The headers of a body that was read and may have changed (a token scrubbed): its old length no longer holds. */
const withoutLength = (headers: Headers): Headers => {
  const out = new Headers(headers)
  out.delete("content-length")
  out.delete("content-encoding")
  return out
}

/**
 * The header builder of one fetch: the given headers (a plain object, as the
 * AI SDK passes, is merged without a `Headers` round trip: every request is on
 * the hot path, BENCHMARKS.md "Request overhead"), the identity headers, and
 * the bearer, ours overwriting theirs.
 */
const headerBuilder = (identityHeaders: Readonly<Record<string, string>>) => {
  // Computed once: the names we overwrite (lower case) and the pairs we add.
  const identity = Object.entries(identityHeaders)
  const overwritten = new Set([...identity.map(([k]) => k.toLowerCase()), "authorization"])
  return (given: RequestInit["headers"], token: string): HeadersInit => {
    if (given == null || isPlainRecord(given)) {
      const out: Record<string, string> = {}
      if (given != null) {
        for (const k in given) {
          const v = given[k]
          if (v !== undefined && !overwritten.has(k.toLowerCase())) out[k] = v
        }
      }
      for (const [k, v] of identity) out[k] = v
      out["authorization"] = `Bearer ${token}`
      return out
    }
    const headers = new Headers(given)
    for (const [k, v] of identity) headers.set(k, v)
    headers.set("authorization", `Bearer ${token}`)
    return headers
  }
}

/** What the request core's outcome becomes for the host: the answer, or an error answer saying why. */
const responseOf = (rejectedMessage: string | undefined) => (outcome: Outcome<Response>): Response => {
  switch (outcome._tag) {
    case "Answered":
      return outcome.response
    case "Refused":
      if (outcome.refusal._tag === "RateLimited") return outcome.response
      return errorResponse(403, "kimi_quota_exceeded", quotaMessage(outcome.refusal, outcome.usage))
    case "NoToken":
      return errorResponse(outcome.failure.status, outcome.failure.code, outcome.failure.message)
    case "Rejected":
      return errorResponse(401, "invalid_authentication_error", rejectedMessage ?? outcome.message)
    case "SendFailed":
      throw outcome.cause
  }
}

/**
 * The request as the core sends it: a `Request` input carries its own method,
 * headers and body, lifted into init so both sends match. `undefined` for a
 * URL outside the API base (sent untouched, without the bearer).
 */
const liftRequest = async (
  input: RequestInfo | URL,
  init: RequestInit | undefined,
  base: string | undefined
): Promise<{ readonly url: string | URL; readonly request: RequestInit } | undefined> => {
  if (typeof input === "object" && "url" in input && !(input instanceof URL)) {
    const r = input as Request
    if (base !== undefined && !isBelowApiBase(r.url, base)) return undefined
    return {
      url: r.url,
      request: {
        method: r.method,
        headers: r.headers,
        body: r.body === null ? null : new Uint8Array(await r.arrayBuffer()),
        signal: r.signal,
        ...init
      }
    }
  }
  if (base !== undefined && !isBelowApiBase(String(input), base)) return undefined
  return { url: input, request: { ...init } }
}

/** Builds the authorizing fetch. */
export const makeKimiFetch = (deps: KimiFetchDeps) => {
  const baseFetch = deps.fetch ?? envFetch()
  const baseOf = typeof deps.apiBaseUrl === "function" ? deps.apiBaseUrl : () => deps.apiBaseUrl as string | undefined
  const headersFor = headerBuilder(deps.headers)
  const toResponse = responseOf(deps.rejectedMessage)

  const readUsage = async (token: string, signal?: AbortSignal): Promise<KimiUsage | undefined> => {
    const base = baseOf()
    return base === undefined
      ? undefined
      : readUsageWithFetch(baseFetch, base, { headers: headersFor({ accept: "application/json" }, token), signal })
  }

  const transport = (url: string | URL, request: RequestInit, body: Body | undefined): Transport<Response> => ({
    send: (token) => {
      const sendInit: RequestInit = { ...request, headers: headersFor(request.headers, token) }
      if (body !== undefined) sendInit.body = body
      return baseFetch(url, sendInit)
    },
    status: (r) => r.status,
    header: (r, name) => r.headers.get(name) ?? undefined,
    readText: readWebTextPrefix,
    withText: (r, text) => new Response(text, { status: r.status, statusText: r.statusText, headers: withoutLength(r.headers) }),
    discard: async (r) => {
      await r.body?.cancel().catch(() => {})
    }
  })

  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const lifted = await liftRequest(input, init, baseOf())
    if (lifted === undefined) return baseFetch(input, init)
    const { url, request } = lifted
    const body = isStream(request.body) ? await replayable(request.body) : request.body ?? undefined
    const signal = request.signal ?? undefined
    return toResponse(await authorize(transport(url, request, body), { tokens: deps, signal, readUsage }))
  }
}
