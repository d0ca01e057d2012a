/**
 * The emulator's `GET /coding/v1/me`: who the bearer's login belongs to, as
 * Kimi answers it (`user_id`, `nickname`, `email`, `region`, …), from the
 * emulator's users. This is how two logins are told apart as accounts.
 *
 * @since 0.2.0
 */
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { withBearer } from "./Api.js"
import type { RouteDeps } from "./Shared.js"

/** `GET /coding/v1/me`. */
export const meRoutes = ({ state, users }: RouteDeps) => {
  const me = withBearer(state)((rec) => {
    const check = state.checkAccessToken(rec.bearer ?? "")
    return HttpServerResponse.jsonUnsafe(users.meBody(check._tag === "ok" ? check.userId : users.defaultUserId))
  })
  return [HttpRouter.route("GET", "/coding/v1/me", me)]
}
