/**
 * The `fetch` the OpenCode plugin hands to the AI SDK: every Kimi request gets
 * a valid bearer token and the identity headers, and a 401 is healed by one
 * forced refresh and one retry.
 *
 * - The AI SDK passes `Authorization: Bearer <placeholder apiKey>` in
 *   `init.headers`; it is overwritten.
 * - The request body is made replayable before the first send (a stream is
 *   read into memory once), so the retry sends the same bytes.
 * - At most one retry, only after a 401, only with a token different from the
 *   rejected one: no loops.
 * - Failures of our own (not logged in, storage, network during refresh)
 *   become an OpenAI-style JSON error `Response` whose message says what to do:
 *   this function never throws for them, so the host never sees an exception
 *   it did not expect.
 *
 * @since 0.1.0
 */

/** A token, or why there is none. */
export type TokenResult =
  | { readonly ok: true; readonly token: string }
  | { readonly ok: false; readonly status: number; readonly code: string; readonly message: string }

/** What the wrapper needs from the token manager. */
export interface KimiFetchDeps {
  /** A valid access token (refreshing when due). */
  readonly getAccessToken: (signal?: AbortSignal) => Promise<TokenResult>
  /** A token other than `rejected` (forcing one refresh if needed). */
  readonly refreshAfterRejection: (rejected: string, signal?: AbortSignal) => Promise<TokenResult>
  /** Identity headers (`X-Msh-*`, `User-Agent`) added to every request. */
  readonly headers: Readonly<Record<string, string>>
  /** The underlying fetch; `globalThis.fetch` by default. */
  readonly fetch?: typeof globalThis.fetch | undefined
}

/** An OpenAI-compatible error response the AI SDK reports with its message. */
export const errorResponse = (status: number, code: string, message: string): Response =>
  new Response(JSON.stringify({ error: { message, type: code, code } }), {
    status,
    headers: { "content-type": "application/json", "x-kimi-auth-error": code }
  })

type Body = NonNullable<RequestInit["body"]>

const isStream = (b: unknown): b is ReadableStream<Uint8Array> =>
  typeof b === "object" && b !== null && typeof (b as ReadableStream).getReader === "function"

/** Reads a one-shot body into memory so it can be sent twice. */
const replayable = async (body: RequestInit["body"]): Promise<Body | undefined> =>
  body == null ? undefined : isStream(body) ? new Uint8Array(await new Response(body).arrayBuffer()) : body

const isPlainRecord = (h: unknown): h is Record<string, string> =>
  typeof h === "object" && h !== null && !Array.isArray(h) && Object.getPrototypeOf(h) === Object.prototype

/** Builds the wrapped fetch. */
export const makeKimiFetch = (deps: KimiFetchDeps) => {
  const baseFetch = deps.fetch ?? globalThis.fetch
  // Computed once: the names we overwrite (lower case) and the pairs we add. Every request is on
  // the hot path (BENCHMARKS.md, "Request overhead"): a plain-object `init.headers` (what the AI
  // SDK passes) is merged into a plain object, without a `Headers` round trip.
  const identity = Object.entries(deps.headers)
  const overwritten = new Set([...identity.map(([k]) => k.toLowerCase()), "authorization"])
  const headersFor = (given: RequestInit["headers"], token: string): HeadersInit => {
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
  return async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // A Request input carries its own method, headers and body: lift them into init so both sends match.
    let url: string | URL
    let request: RequestInit
    if (typeof input === "object" && "url" in input && !(input instanceof URL)) {
      const r = input as Request
      url = r.url
      request = {
        method: r.method,
        headers: r.headers,
        body: r.body === null ? null : new Uint8Array(await r.arrayBuffer()),
        signal: r.signal,
        ...init
      }
    } else {
      url = input
      request = { ...init }
    }
    const body = isStream(request.body) ? await replayable(request.body) : request.body ?? undefined
    const signal = request.signal ?? undefined
    const send = (token: string) => {
      const sendInit: RequestInit = { ...request, headers: headersFor(request.headers, token) }
      if (body !== undefined) sendInit.body = body
      return baseFetch(url, sendInit)
    }

    const first = await deps.getAccessToken(signal)
    if (!first.ok) return errorResponse(first.status, first.code, first.message)
    const response = await send(first.token)
    if (response.status !== 401) return response

    // The server refused a token we believed valid (revoked, clock skew, rotated elsewhere): one refresh, one retry.
    await response.body?.cancel().catch(() => {})
    const second = await deps.refreshAfterRejection(first.token, signal)
    if (!second.ok) return errorResponse(second.status, second.code, second.message)
    if (second.token === first.token) {
      return errorResponse(401, "invalid_authentication_error", "Kimi rejected the access token and no new one could be obtained; run `opencode auth login -p kimi`.")
    }
    return send(second.token)
  }
}
