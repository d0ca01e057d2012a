/**
 * The emulator's OAuth endpoints (`auth.kimi.com`): the device authorization
 * and the token endpoint. Each takes a form body only (RFC 6749 3.2) with no
 * repeated parameter (3.1), and its answers are never cached (5.1). The
 * protocol itself (polling, rotation, reuse detection) is `State.ts`'s.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Answer } from "../State.js"
import { CurrentRequest, FORM, mediaType, type MutableRecord, parseForm, type RouteDeps } from "./Shared.js"

/** RFC 6749 5.1: token answers must not be cached. */
const oauthResponse = (answer: Answer) =>
  HttpServerResponse.jsonUnsafe(answer.body, {
    status: answer.status,
    headers: { "cache-control": "no-store", pragma: "no-cache" }
  })

/** Records the answer's `error` code (a string, or an object's `type`). */
export const setError = (rec: MutableRecord, body: Record<string, unknown>) => {
  const e = body["error"]
  rec.error = typeof e === "string"
    ? e
    : typeof e === "object" && e !== null && "type" in e && typeof e.type === "string"
    ? e.type
    : undefined
}

/** The answer to a request that is not a single-valued form, or `undefined` when it is one. */
export const formProblem = (rec: MutableRecord): Answer | undefined => {
  if (mediaType(rec.contentType) !== FORM || rec.form === undefined) {
    return { status: 400, body: { error: "invalid_request", error_description: `The request body must be ${FORM}.` } }
  }
  const { duplicates } = parseForm(rec.body)
  return duplicates.length > 0
    ? { status: 400, body: { error: "invalid_request", error_description: `Repeated parameter: ${duplicates.join(", ")}.` } }
    : undefined
}

/** An OAuth endpoint: form body required (RFC 6749 3.2), no repeated parameter (3.1). */
const oauth = (f: (form: Readonly<Record<string, string>>) => Answer) =>
  Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const answer = formProblem(rec) ?? f(rec.form!)
    setError(rec, answer.body)
    return oauthResponse(answer)
  })

/** `POST /api/oauth/device_authorization` and `POST /api/oauth/token`. */
export const oauthRoutes = ({ state }: RouteDeps) => [
  HttpRouter.route("POST", "/api/oauth/device_authorization", oauth((form) => state.deviceAuthorization(form))),
  HttpRouter.route("POST", "/api/oauth/token", oauth((form) => state.token(form)))
]
