/**
 * The one way this package reads `GET {API base}/usages` on the side: to name
 * the used-up window and its reset in a quota refusal. The request core
 * (`request/Authorize.ts`) asks its host for a read; every host (the
 * authorizing fetch of the OpenCode plugin, the AI SDK and the facade; the
 * OpenCode 2 hooks; the Effect `HttpClient` layer) gives it one of the two
 * adapters below, which differ only in their transport and their clock.
 *
 * The policy lives here once: the path, {@link USAGES_TIMEOUT_MS}, the body
 * cap, the decoder (`Usage.decodeUsage`, both shapes), and "any failure is
 * `undefined`": a quota answer never waits long for, or fails because of, the
 * read that explains it. The typed read (`KimiApi.usage`, used by
 * `kimi-auth usage` and the facade's `usage()`) decodes with the same
 * {@link usageOfAnswer} but fails with typed errors instead.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClient from "effect/http/HttpClient"
import { API_BODY_LIMIT_BYTES, readTextCapped, readWebTextCapped } from "../net/HttpBody.js"
import { decodeUsage } from "./Usage.js"
import type { KimiUsage } from "./UsageModel.js"

/** How long a quota refusal waits for `/usages` before answering without it. */
export const USAGES_TIMEOUT_MS = 5000

/** The path of the quota, below the API base. */
export const USAGES_PATH = "/usages"

/** `{base}/usages`. */
export const usagesUrl = (apiBaseUrl: string): string => `${apiBaseUrl}${USAGES_PATH}`

/** The quota from one `/usages` answer: only a `200` whose body decodes; `undefined` otherwise. Pure; never throws. */
export const usageOfAnswer = (status: number, text: string): KimiUsage | undefined => {
  if (status !== 200) return undefined
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined
  }
  const decoded = decodeUsage(json)
  return decoded._tag === "Success" ? decoded.success : undefined
}

/**
 * Reads `/usages` with a Fetch-API `fetch` that authorizes the request itself
 * (bearer and identity headers are the caller's: `headers` are added as
 * given). Bounded by {@link USAGES_TIMEOUT_MS} and `signal`; never rejects.
 */
export const readUsageWithFetch = async (
  fetch: (url: string, init: RequestInit) => Promise<Response>,
  apiBaseUrl: string,
  options: { readonly headers?: HeadersInit | undefined; readonly signal?: AbortSignal | undefined } = {}
): Promise<KimiUsage | undefined> => {
  try {
    const timeout = AbortSignal.timeout(USAGES_TIMEOUT_MS)
    const response = await fetch(usagesUrl(apiBaseUrl), {
      headers: options.headers ?? { accept: "application/json" },
      signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout
    })
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => {})
      return undefined
    }
    return usageOfAnswer(200, await readWebTextCapped(response, API_BODY_LIMIT_BYTES))
  } catch {
    return undefined
  }
}

/**
 * Reads `/usages` with an Effect `HttpClient`; `authorize` adds the bearer and
 * the identity headers. Bounded by {@link USAGES_TIMEOUT_MS} on the Effect
 * clock (a `TestClock` drives it); never fails.
 */
export const readUsageWithClient = (
  client: HttpClient.HttpClient,
  authorize: (request: HttpClientRequest.HttpClientRequest) => HttpClientRequest.HttpClientRequest,
  apiBaseUrl: string
): Effect.Effect<KimiUsage | undefined> =>
  client.execute(authorize(HttpClientRequest.acceptJson(HttpClientRequest.get(usagesUrl(apiBaseUrl))))).pipe(
    Effect.flatMap((r): Effect.Effect<string, unknown> =>
      r.status === 200 ? readTextCapped(r, API_BODY_LIMIT_BYTES) : Effect.fail(r.status)
    ),
    Effect.map((text) => usageOfAnswer(200, text)),
    Effect.timeout(USAGES_TIMEOUT_MS),
    Effect.orElseSucceed(() => undefined)
  )
