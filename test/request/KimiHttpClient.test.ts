/**
 * The authorizing `HttpClient` layer on the TestClock, over a scripted
 * platform client that plays both Kimi's OAuth token endpoint and its API.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { TestClock } from "effect/testing"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import { inspect } from "node:util"
import { KimiHttpClient, kimiErrorOf, layer as kimiHttpLayer } from "../../src/request/KimiHttpClient.js"
import type { KimiAuthOptions } from "../../src/config/KimiAuthConfig.js"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { hang, json, makeScripted, oauthError, type Recorded, type Step } from "../support/scripted.js"
import { refreshed, tokenSet } from "../support/tokens.js"
import { identityLayer } from "../support/settings.js"

const API = "https://api.test/coding/v1"
const DEVICE_ID = "00000000-0000-4000-8000-000000000001"



const usages = {
  usage: { limit: "100", used: "100", remaining: "0", resetTime: "1970-01-08T00:00:00Z" },
  limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "4", remaining: "16", resetTime: "1970-01-01T05:00:00Z" } }]
}

/** The scripted platform client under the real token manager, OAuth client and identity, with the layer on top. */
const setup = (initial: TokenSet | undefined, handler: (req: Recorded, i: number) => Step, options: KimiAuthOptions = {}) => {
  const scripted = makeScripted(handler)
  const identity = identityLayer(options)
  const oauth = OAuthClient.layer.pipe(Layer.provide(Layer.merge(scripted.layer, identity)))
  const store = TokenStore.layerMemory(initial)
  const manager = TokenManager.layer({ unrefTimers: false }).pipe(Layer.provide(Layer.mergeAll(oauth, store, identity)))
  const layer = kimiHttpLayer.pipe(Layer.provide(Layer.mergeAll(manager, store, identity, scripted.layer)))
  return { requests: scripted.requests, layer }
}

const api = (req: Recorded) => req.url.startsWith(API)
const oauthCalls = (requests: ReadonlyArray<Recorded>) => requests.filter((r) => r.url.endsWith("/api/oauth/token"))

describe("KimiHttpClient layer", () => {
  it.effect("API requests carry the bearer and the identity headers; other hosts get neither, and no token is looked up", () => {
    // No login at all: a token lookup would fail, so the other host's success proves there was none.
    const { requests, layer } = setup(undefined, () => json(200, { ok: true }))
    return Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const other = yield* client.execute(HttpClientRequest.get("https://elsewhere.test/x").pipe(HttpClientRequest.setHeader("authorization", "Bearer theirs")))
      assert.strictEqual(other.status, 200)
      const lookalike = yield* client.execute(HttpClientRequest.get("https://api.test/coding/v1x/models"))
      assert.strictEqual(lookalike.status, 200)
      assert.deepStrictEqual(requests.map((r) => [r.headers["authorization"], r.headers["x-msh-device-id"]]), [
        ["Bearer theirs", undefined],
        [undefined, undefined]
      ])
    }).pipe(Effect.provide(layer))
  })

  it.effect("the API base is the one of the region that issued the login unless pinned", () => {
    const global = "https://api.kimi.ai/coding/v1"
    const login = new TokenSet({ ...tokenSet(0, 900), apiBaseUrl: global, region: "global" })
    const unpinned = setup(login, () => json(200, {}), { apiBaseUrl: undefined })
    const pinned = setup(login, () => json(200, {}))
    return Effect.gen(function*() {
      yield* Effect.gen(function*() {
        yield* HttpClient.get(`${global}/models`)
        yield* HttpClient.get("https://api.kimi.com/coding/v1/models")
      }).pipe(Effect.provide(unpinned.layer))
      assert.deepStrictEqual(unpinned.requests.map((r) => r.headers["authorization"]), ["Bearer at-0", undefined])
      yield* Effect.gen(function*() {
        yield* HttpClient.get(`${global}/models`)
        yield* HttpClient.get(`${API}/models`)
      }).pipe(Effect.provide(pinned.layer))
      assert.deepStrictEqual(pinned.requests.map((r) => r.headers["authorization"]), [undefined, "Bearer at-0"])
    })
  })

  it.effect("a valid token is sent with the six X-Msh headers and the User-Agent", () => {
    const { requests, layer } = setup(tokenSet(0, 900), () => json(200, { data: [] }))
    return Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const res = yield* client.execute(HttpClientRequest.get(`${API}/models`))
      assert.strictEqual(res.status, 200)
      const h = requests[0]!.headers
      assert.strictEqual(h["authorization"], "Bearer at-0")
      assert.strictEqual(h["x-msh-device-id"], DEVICE_ID)
      for (const name of ["x-msh-platform", "x-msh-version", "x-msh-device-name", "x-msh-device-model", "x-msh-os-version", "user-agent"]) {
        assert.isString(h[name], name)
      }
    }).pipe(Effect.provide(layer))
  })

  it.effect("a token due on the TestClock is refreshed before the request is sent", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) => (api(req) ? json(200, {}) : refreshed(1)))
    return Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      yield* client.execute(HttpClientRequest.get(`${API}/models`))
      yield* TestClock.adjust("451 seconds")
      yield* client.execute(HttpClientRequest.get(`${API}/models`))
      assert.deepStrictEqual(requests.filter(api).map((r) => r.headers["authorization"]), ["Bearer at-0", "Bearer at-1"])
      assert.strictEqual(oauthCalls(requests).length, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a 401 is healed by exactly one refresh and one retry that sends the same body (a stream body too)", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) =>
      !api(req) ? refreshed(1) : req.headers["authorization"] === "Bearer at-0" ? json(401, { error: { type: "invalid_authentication_error" } }) : json(200, { ok: 1 }))
    return Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const body = Stream.make(new TextEncoder().encode('{"model":'), new TextEncoder().encode('"kimi-for-coding"}'))
      const res = yield* client.execute(HttpClientRequest.post(`${API}/chat/completions`).pipe(HttpClientRequest.bodyStream(body, { contentType: "application/json" })))
      assert.strictEqual(res.status, 200)
      assert.deepStrictEqual(yield* res.json, { ok: 1 })
      const calls = requests.filter(api)
      assert.deepStrictEqual(calls.map((r) => r.headers["authorization"]), ["Bearer at-0", "Bearer at-1"])
      assert.deepStrictEqual(calls.map((r) => r.body), ['{"model":"kimi-for-coding"}', '{"model":"kimi-for-coding"}'])
      const refreshes = oauthCalls(requests)
      assert.strictEqual(refreshes.length, 1)
      assert.strictEqual(refreshes[0]!.form["refresh_token"], "rt-0")
      // The healed token is kept: the next request sends it at once.
      yield* client.execute(HttpClientRequest.get(`${API}/models`))
      assert.strictEqual(requests.filter(api).at(-1)!.headers["authorization"], "Bearer at-1")
    }).pipe(Effect.provide(layer))
  })

  it.effect("an error status made a failure by filterStatusOk shows no bearer in the error", () => {
    const { layer } = setup(tokenSet(0, 900), () => json(500, { error: { message: "down" } }))
    return Effect.gen(function*() {
      const client = (yield* HttpClient.HttpClient).pipe(HttpClient.filterStatusOk)
      const e = yield* Effect.flip(client.get(`${API}/models`))
      assert.notMatch([String(e), e.message, JSON.stringify(e), inspect(e, { depth: 10 })].join("\n"), /at-0|rt-0/)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a second 401 is answered as is: no loop", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) => (api(req) ? json(401, {}) : refreshed(1)))
    return Effect.gen(function*() {
      const res = yield* HttpClient.get(`${API}/models`)
      assert.strictEqual(res.status, 401)
      assert.strictEqual(requests.filter(api).length, 2)
      assert.strictEqual(oauthCalls(requests).length, 1)
      // An API that refuses every token: further calls send once each and refresh nothing (a forced refresh just ran).
      for (let i = 0; i < 5; i++) yield* Effect.ignore(HttpClient.get(`${API}/models`))
      assert.strictEqual(requests.filter(api).length, 7)
      assert.strictEqual(oauthCalls(requests).length, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("no login: NotLoggedInError, typed on KimiHttpClient and carried by the HttpClientError, and nothing sent", () => {
    const { requests, layer } = setup(undefined, () => json(200, {}))
    return Effect.gen(function*() {
      const typed = yield* KimiHttpClient
      const error = yield* Effect.flip(typed.get(`${API}/models`))
      assert.strictEqual(error._tag, "NotLoggedInError")
      assert.match(error.message, /kimi-auth login/)
      // Not a TransportError: retryTransient must not retry a dead login.
      const plain = yield* Effect.flip((yield* HttpClient.HttpClient).pipe(HttpClient.retryTransient({ times: 3 })).get(`${API}/models`))
      assert.strictEqual(plain._tag, "HttpClientError")
      assert.strictEqual(plain.reason._tag, "EncodeError")
      assert.strictEqual(kimiErrorOf(plain)?._tag, "NotLoggedInError")
      assert.match(plain.message, /not logged in/)
      assert.strictEqual(requests.length, 0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a dead login (refresh rejected after a 401) fails with NotLoggedInError; no secret in any error", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) => (api(req) ? json(401, {}) : oauthError("invalid_grant")))
    return Effect.gen(function*() {
      const typed = yield* KimiHttpClient
      const error = yield* Effect.flip(typed.get(`${API}/models`))
      assert.strictEqual(error._tag, "NotLoggedInError")
      const plain = yield* Effect.flip(HttpClient.get(`${API}/models`))
      for (const e of [error, plain]) {
        const shown = [String(e), e.message, JSON.stringify(e), inspect(e, { depth: 10 })].join("\n")
        assert.notMatch(shown, /at-0|rt-0/)
      }
      assert.strictEqual(requests.filter(api).length, 2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("on the new plans' /usages shape: QuotaExceededError names the used-up monthly window (by its share) and its reset", () => {
    const { layer } = setup(tokenSet(0, 900), (req) =>
      req.url.endsWith("/usages")
        ? json(200, {
          usages: {
            limit_5h: { used_ratio: 0.2, reset_time: "1970-01-01T05:00:00Z" },
            limit_7d: { used_ratio: "0.9", reset_time: "1970-01-08T00:00:00Z" },
            limit_month_code: { used_ratio: "1", reset_time: "1970-01-31T00:00:00Z" }
          }
        })
        : api(req)
        ? json(403, { error: { message: "You've reached your usage limit for this billing cycle.", type: "permission_error" } })
        : refreshed(1))
    return Effect.gen(function*() {
      const error = yield* Effect.flip((yield* KimiHttpClient).post(`${API}/chat/completions`))
      assert.strictEqual(error._tag, "QuotaExceededError")
      if (error._tag !== "QuotaExceededError") return
      assert.strictEqual(error.window?.label, "monthly code")
      assert.strictEqual(error.usage?.shape, "new")
      assert.deepStrictEqual(error.resetsAt, new Date("1970-01-31T00:00:00Z"))
      assert.match(error.message, /\(monthly code window: 100% used\); it resets at .* \(in 30 d 0 h\)/)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a quota answer fails with QuotaExceededError (window and reset from /usages), never refreshed, never retried by retryTransient", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) =>
      req.url.endsWith("/usages")
        ? json(200, usages)
        : api(req)
        ? json(429, { error: { message: "quota exceeded", type: "exceeded_current_quota_error" } })
        : refreshed(1))
    return Effect.gen(function*() {
      const typed = yield* KimiHttpClient
      const error = yield* Effect.flip(typed.post(`${API}/chat/completions`))
      assert.strictEqual(error._tag, "QuotaExceededError")
      if (error._tag !== "QuotaExceededError") return
      assert.strictEqual(error.status, 429)
      assert.strictEqual(error.window?.label, "weekly")
      assert.deepStrictEqual(error.resetsAt, new Date("1970-01-08T00:00:00Z"))
      assert.match(error.message, /weekly window: 100 of 100 used\); it resets at .* \(in 7 d 0 h\)/)
      assert.notMatch(error.message, /at-0/)
      // Through the plain HttpClient with retryTransient: a failure, not a 429 response, so it is not retried.
      requests.length = 0
      const client = (yield* HttpClient.HttpClient).pipe(HttpClient.retryTransient({ times: 3 }))
      const plain = yield* Effect.flip(client.post(`${API}/chat/completions`))
      assert.strictEqual(plain._tag, "HttpClientError")
      assert.strictEqual(plain.reason._tag, "StatusCodeError")
      assert.strictEqual(plain.response?.status, 403)
      assert.strictEqual(plain.response?.headers["x-kimi-upstream-status"], "429")
      assert.strictEqual(kimiErrorOf(plain)?._tag, "QuotaExceededError")
      assert.deepStrictEqual(requests.map((r) => r.url.slice(API.length)), ["/chat/completions", "/usages"])
      // The response and request inside the error are the caller's, without the bearer that was sent.
      for (const e of [error, plain]) {
        assert.notMatch([String(e), e.message, JSON.stringify(e), inspect(e, { depth: 10 })].join("\n"), /at-0|rt-0/)
      }
      assert.isUndefined(plain.request.headers["authorization"])
      assert.strictEqual(oauthCalls(requests).length, 0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a /usages that never answers holds the quota error back 5 s (TestClock), then it comes without a window", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) =>
      req.url.endsWith("/usages") ? hang : json(429, { error: { message: "quota", type: "exceeded_current_quota_error" } }))
    return Effect.gen(function*() {
      const typed = yield* KimiHttpClient
      const fiber = yield* Effect.forkChild(Effect.flip(typed.post(`${API}/chat/completions`)))
      // The request crosses a promise bridge: wait (in real time) until /usages was sent, so its 5 s timer runs.
      yield* Effect.promise(async () => {
        while (!requests.some((r) => r.url.endsWith("/usages"))) await new Promise((resolve) => setTimeout(resolve, 2))
      })
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "QuotaExceededError")
      if (error._tag === "QuotaExceededError") assert.isUndefined(error.window)
    }).pipe(Effect.provide(layer))
  })

  it.effect("the 403 usage-limit answer is the quota too; a plain 429 is a response, without a refresh", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (req) =>
      req.url.endsWith("/usages")
        ? json(500, {})
        : req.url.endsWith("/chat/completions")
        ? json(403, { error: { message: "You've reached your usage limit for this billing cycle." } })
        : api(req)
        ? json(429, { error: { message: "We're receiving too many requests", type: "rate_limit_reached_error" } }, { "retry-after": "2" })
        : refreshed(1))
    return Effect.gen(function*() {
      const typed = yield* KimiHttpClient
      const quota = yield* Effect.flip(typed.post(`${API}/chat/completions`))
      assert.strictEqual(quota._tag, "QuotaExceededError")
      if (quota._tag === "QuotaExceededError") {
        assert.strictEqual(quota.window, undefined) // /usages failed: still a quota error, without a reset time
        assert.match(quota.message, /usage limit is used up\. /)
      }
      const limited = yield* typed.get(`${API}/models`)
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(limited.headers["retry-after"], "2")
      assert.strictEqual(((yield* limited.json) as { error: { type: string } }).error.type, "rate_limit_reached_error")
      assert.strictEqual(oauthCalls(requests).length, 0)
    }).pipe(Effect.provide(layer))
  })
})
