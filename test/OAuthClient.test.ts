/** What the OAuth client puts in its errors when a server echoes the secrets it was sent. */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { OAuthClient } from "../src/OAuthClient.js"
import { json, makeScripted, type Step } from "./support/scripted.js"
import { identityLayer } from "./support/settings.js"

const SECRET = "rt-very-secret-refresh-value-0123456789"

const clientWith = (step: Step) => {
  const scripted = makeScripted([step])
  return OAuthClient.layer.pipe(Layer.provide(Layer.merge(scripted.layer, identityLayer())))
}

const refreshError = (step: Step) =>
  Effect.flatMap(OAuthClient, (c) => Effect.flip(c.refreshToken(Redacted.make(SECRET)))).pipe(Effect.provide(clientWith(step)))

describe("OAuthClient error messages never carry a secret the request sent", () => {
  const cases: ReadonlyArray<[string, Step, string]> = [
    ["echoed in error_description", json(400, { error: "invalid_request", error_description: `token ${SECRET} is malformed` }), "OAuthError"],
    ["echoed as the error code", json(400, { error: SECRET }), "OAuthError"],
    ["echoed in an invalid_grant description", json(400, { error: "invalid_grant", error_description: `grant ${SECRET} spent` }), "InvalidGrantError"],
    ["echoed in an HTML 502 page", { status: 502, body: `<html>upstream said refresh_token ${SECRET}</html>` }, "ServerError"],
    ["echoed in a non-JSON 400", { status: 400, body: `bad request: ${SECRET}` }, "InvalidResponseError"]
  ]
  for (const [name, step, tag] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const error = yield* refreshError(step)
        assert.strictEqual(error._tag, tag)
        assert.notInclude(error.message, SECRET)
        assert.notInclude(JSON.stringify(error), SECRET)
      }))
  }

  it.effect("a successful refresh still keeps the tokens exactly as sent by the server", () =>
    Effect.gen(function*() {
      const tokens = yield* Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SECRET))).pipe(
        Effect.provide(clientWith(json(200, { access_token: "at-new", refresh_token: SECRET, expires_in: 900 })))
      )
      assert.strictEqual(Redacted.value(tokens.refreshToken), SECRET)
      assert.strictEqual(Redacted.value(tokens.accessToken), "at-new")
    }))
})
