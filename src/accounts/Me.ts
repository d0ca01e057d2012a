/**
 * Who a login belongs to: `GET {API base}/me` with the login's access token
 * (Kimi's `user_id`, `nickname`, `email`, `region`, …; see
 * `../shared/kimi-protocol.md`). This is how two logins are told apart as
 * accounts: the same user logging in again is the same account.
 *
 * The answer is decoded leniently: `user_id` is required (Moonshot's
 * kimi-code treats an answer without it as malformed), every other field
 * is optional and capped. The request carries the identity headers, is
 * bounded by the request timeout and its body by the API cap; the token is
 * never logged.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Redacted from "effect/Redacted"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { isRegion, type KimiRegion } from "../light/Region.js"
import { readTextCapped } from "../net/HttpBody.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"

/** A Kimi user as `/me` describes them. */
export interface KimiUser {
  readonly userId: string
  readonly nickname: string | undefined
  readonly email: string | undefined
  /** The region Kimi reports for the user, when it does. */
  readonly region: KimiRegion | undefined
}

/** `/me` could not say who the login belongs to. Holds no token. */
export class MeError extends Data.TaggedError("MeError")<{
  readonly url: string
  readonly message: string
}> {}

/** Largest `/me` answer read. */
export const ME_BODY_LIMIT_BYTES = 64 * 1024

const field = (u: unknown, max: number): string | undefined => {
  if (typeof u !== "string" && typeof u !== "number") return undefined
  // eslint-disable-next-line no-control-regex
  const t = String(u).replace(/[\u0000-\u001f\u007f]/g, "").trim()
  return t === "" ? undefined : t.slice(0, max)
}

/** Decodes a `/me` body (parsed JSON) leniently; `undefined` without a usable `user_id`. */
export const decodeMe = (body: unknown): KimiUser | undefined => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return undefined
  const r = body as Record<string, unknown>
  const userId = field(r["user_id"], 128)
  if (userId === undefined) return undefined
  return {
    userId,
    nickname: field(r["nickname"], 200),
    email: field(r["email"], 200),
    region: isRegion(r["region"]) ? r["region"] : undefined
  }
}

/**
 * Asks `GET {apiBaseUrl}/me` who holds `accessToken`. Fails with
 * {@link MeError} (never holding the token) when Kimi cannot be reached, does
 * not answer 200 in time, or answers without a `user_id`.
 */
export const fetchMe = (
  apiBaseUrl: string,
  accessToken: Redacted.Redacted<string>
): Effect.Effect<KimiUser, MeError, HttpClient.HttpClient | DeviceIdentity | KimiAuthConfig> =>
  Effect.gen(function*() {
    const settings = yield* KimiAuthConfig
    const identity = yield* DeviceIdentity
    const http = yield* HttpClient.HttpClient
    const url = `${apiBaseUrl}/me`
    const fail = (why: string) => new MeError({ url, message: `Kimi did not say who this login belongs to (${url}: ${why}).` })
    const request = HttpClientRequest.get(url).pipe(
      HttpClientRequest.setHeaders(identity.headers),
      HttpClientRequest.bearerToken(Redacted.value(accessToken)),
      HttpClientRequest.acceptJson
    )
    const text = yield* http.execute(request).pipe(
      Effect.mapError(() => fail("unreachable")),
      Effect.flatMap((response) =>
        response.status === 200
          ? readTextCapped(response, ME_BODY_LIMIT_BYTES).pipe(Effect.mapError(() => fail("unreadable answer")))
          : Effect.fail(fail(`HTTP ${response.status}`))
      ),
      Effect.timeoutOrElse({ duration: settings.requestTimeout, orElse: () => Effect.fail(fail("no answer in time")) })
    )
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      return yield* fail("not JSON")
    }
    const user = decodeMe(json)
    return user ?? (yield* fail("no user_id"))
  }).pipe(Effect.withSpan("fetchMe"))
