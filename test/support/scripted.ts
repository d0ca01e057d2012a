/**
 * A scripted `HttpClient` for unit tests on the TestClock: every request is
 * recorded with its form fields, headers and the (test) time it was made, and
 * answered by the next step of a script.
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientResponse from "effect/http/HttpClientResponse"

/** One recorded request. */
export interface Recorded {
  readonly url: string
  readonly method: string
  readonly headers: Record<string, string>
  readonly form: Record<string, string>
  /** The body as text (a byte body; empty otherwise). */
  readonly body: string
  readonly at: number
}

/** A step: a response, or a network failure. */
export type Step =
  | { readonly status: number; readonly body: string; readonly headers?: Record<string, string> }
  | { readonly network: true }
  | { readonly hang: true }
  | { readonly afterMillis: number; readonly then: Step }

/** `step`, answered `millis` after the request arrived (on the test's clock): a late answer. */
export const late = (millis: number, step: Step): Step => ({ afterMillis: millis, then: step })

/** JSON response step. */
export const json = (status: number, body: unknown, headers?: Record<string, string>): Step => ({
  status,
  body: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers }
})

/** RFC 6749 5.2 error step. */
export const oauthError = (error: string, status = 400): Step => json(status, { error })

/** A network failure step. */
export const network: Step = { network: true }

/** A request that never answers. */
export const hang: Step = { hang: true }

/** A scripted client: `steps` are answered in order; past the end the last repeats. */
export const makeScripted = (steps: ReadonlyArray<Step> | ((req: Recorded, index: number) => Step)) => {
  const requests: Array<Recorded> = []
  const client = HttpClient.make((request) =>
    Effect.gen(function*() {
      const at = yield* Clock.currentTimeMillis
      const body = request.body
      const text = body._tag === "Uint8Array" ? new TextDecoder().decode(body.body) : ""
      const rec: Recorded = {
        url: request.url,
        method: request.method,
        headers: { ...request.headers },
        form: Object.fromEntries(new URLSearchParams(text)),
        body: text,
        at
      }
      requests.push(rec)
      const index = requests.length - 1
      let step = typeof steps === "function" ? steps(rec, index) : steps[Math.min(index, steps.length - 1)]!
      while ("afterMillis" in step) {
        yield* Effect.sleep(step.afterMillis)
        step = step.then
      }
      if ("network" in step) {
        return yield* Effect.fail(
          new HttpClientError.HttpClientError({
            reason: new HttpClientError.TransportError({ request, description: "connection refused" })
          })
        )
      }
      if ("hang" in step) return yield* Effect.never
      return HttpClientResponse.fromWeb(
        request,
        new Response(step.status === 204 ? null : step.body, { status: step.status, headers: step.headers ?? {} })
      )
    })
  )
  return { requests, layer: Layer.succeed(HttpClient.HttpClient, client) }
}
