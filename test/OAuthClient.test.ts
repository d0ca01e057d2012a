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

describe("OAuthClient and regions: a refresh goes to the region that issued the login", () => {
  const refreshVia = (options: Parameters<typeof identityLayer>[0], stored: Parameters<OAuthClient["Service"]["refreshToken"]>[1]) => {
    const scripted = makeScripted([json(200, { access_token: "at-2", refresh_token: "rt-2", expires_in: 900 })])
    const layer = OAuthClient.layer.pipe(Layer.provide(Layer.merge(scripted.layer, identityLayer(options))))
    return Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SECRET), stored)).pipe(
      Effect.provide(layer),
      Effect.map((tokens) => ({ tokens, urls: scripted.requests.map((r) => r.url) }))
    )
  }
  const global = { oauthHost: "https://auth.kimi.ai", apiBaseUrl: "https://api.kimi.ai/coding/v1", region: "global" as const }

  it.effect("unpinned settings: the stored issuer's host is used and stamped on the new tokens", () =>
    Effect.gen(function*() {
      const { tokens, urls } = yield* refreshVia({ oauthHost: undefined, apiBaseUrl: undefined }, global)
      assert.deepStrictEqual(urls, ["https://auth.kimi.ai/api/oauth/token"])
      assert.strictEqual(tokens.region, "global")
      assert.strictEqual(tokens.apiBaseUrl, "https://api.kimi.ai/coding/v1")
    }))

  it.effect("a pinned host (option or env) wins over the stored one", () =>
    Effect.gen(function*() {
      const { tokens, urls } = yield* refreshVia({}, global)
      assert.deepStrictEqual(urls, ["https://auth.test/api/oauth/token"])
      assert.strictEqual(tokens.oauthHost, "https://auth.test")
      assert.strictEqual(tokens.region, "global")
    }))

  it.effect("an older login without an issuer refreshes at the settings' region", () =>
    Effect.gen(function*() {
      const { tokens, urls } = yield* refreshVia({ oauthHost: undefined, apiBaseUrl: undefined, region: "global" }, undefined)
      assert.deepStrictEqual(urls, ["https://auth.kimi.ai/api/oauth/token"])
      assert.strictEqual(tokens.region, "global")
    }))
})
