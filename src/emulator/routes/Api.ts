/**
 * The emulator's Kimi Code API (`/coding/v1`) besides chat: the bearer check
 * every API route goes through ({@link withBearer}), the account's models and
 * its quota (`/usages`, in the shape the quota is set to answer).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { MODELS } from "../Models.js"
import type { EmulatorState } from "../State.js"
import { apiError, CurrentRequest, type MutableRecord, type RouteDeps } from "./Shared.js"

/** Why a bearer was refused, in the words of the `401` answer. */
const refusedBecause = (check: ReturnType<EmulatorState["checkAccessToken"]> | undefined): string =>
  check === undefined
    ? "the Authorization header is missing or is not a Bearer token"
    : check._tag === "expired"
    ? "the access token has expired"
    : check._tag === "revoked"
    ? "the access token has been revoked"
    : "the access token is not valid"

/** A Kimi Code API endpoint: a valid bearer access token is required, else `401 invalid_authentication_error`. */
export const withBearer = (state: EmulatorState) =>
(f: (rec: MutableRecord) => HttpServerResponse.HttpServerResponse) =>
  Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const check = rec.bearer === undefined ? undefined : state.checkAccessToken(rec.bearer)
    state.countApi(check?._tag !== "ok")
    if (check?._tag === "ok") return f(rec)
    rec.error = "invalid_authentication_error"
    return HttpServerResponse.setHeader(
      apiError(401, "invalid_authentication_error", `Invalid Authentication: ${refusedBecause(check)}.`),
      "www-authenticate",
      "Bearer"
    )
  })

/** `GET /coding/v1/models` and `GET /coding/v1/usages`. */
export const apiRoutes = ({ state, quota, account }: RouteDeps) => {
  const api = withBearer(state)
  const models = api(() =>
    HttpServerResponse.jsonUnsafe({
      object: "list",
      data: MODELS.map((m) => ({ object: "model", created: 1761264000, owned_by: "moonshot", ...m }))
    })
  )
  const usages = api(() => HttpServerResponse.jsonUnsafe(quota.usagesBody(state.settings.now(), account)))
  return [
    HttpRouter.route("GET", "/coding/v1/models", models),
    HttpRouter.route("GET", "/coding/v1/usages", usages)
  ]
}
