import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { DeviceFlow } from "../../src/oauth/DeviceFlow.js"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { hang, json, makeScripted, network, oauthError, type Step } from "../support/scripted.js"
import { identityLayer } from "../support/settings.js"

const deviceAuth = (over: Record<string, unknown> = {}): Step =>
  json(200, {
    device_code: "dc-secret-123",
    user_code: "WDJB-MJHT",
    verification_uri: "https://auth.test/device",
    verification_uri_complete: "https://auth.test/device?user_code=WDJB-MJHT",
    expires_in: 900,
    interval: 5,
    ...over
  })

const tokens = (n = 1): Step =>
  json(200, { access_token: `at-${n}`, refresh_token: `rt-${n}`, expires_in: 900, token_type: "Bearer", scope: "kimi-code" })

const setup = (steps: ReadonlyArray<Step>) => {
  const scripted = makeScripted(steps)
  const layer = DeviceFlow.layer.pipe(
    Layer.provide(OAuthClient.layer),
    Layer.provide(Layer.merge(scripted.layer, identityLayer({ requestTimeout: "10 seconds" })))
  )
  return { requests: scripted.requests, layer }
}

/** Starts the flow, lets `seconds` of test time pass, and returns the fiber. */
const run = (seconds: number) =>
  Effect.gen(function*() {
    const flow = yield* DeviceFlow
    const auth = yield* flow.start
    const fiber = yield* Effect.forkChild(flow.awaitTokens(auth))
    yield* TestClock.adjust(`${seconds} seconds`)
    return { auth, fiber }
  })

const pollTimes = (requests: ReadonlyArray<{ url: string; at: number }>) =>
  requests.filter((r) => r.url.endsWith("/api/oauth/token")).map((r) => r.at)

describe("DeviceFlow", () => {
  it.effect("pending, pending, approved: polls one interval (plus margin) apart, starting one interval in", () => {
    const { requests, layer } = setup([deviceAuth(), oauthError("authorization_pending"), oauthError("authorization_pending"), tokens()])
    return Effect.gen(function*() {
      const { auth, fiber } = yield* run(60)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(Redacted.value(result.accessToken), "at-1")
      assert.strictEqual(Redacted.value(result.refreshToken), "rt-1")
      assert.strictEqual(result.expiresAt, 15 + 900) // floored: never later than the server said
      assert.strictEqual(auth.userCode, "WDJB-MJHT")
      assert.deepStrictEqual(pollTimes(requests), [5250, 10500, 15750])
      const [authz, poll] = requests
      assert.strictEqual(authz!.url, "https://auth.test/api/oauth/device_authorization")
      assert.deepStrictEqual(authz!.form, { client_id: "17e5f671-d194-4dfb-9706-5516cb48c098" })
      assert.deepStrictEqual(poll!.form, {
        client_id: "17e5f671-d194-4dfb-9706-5516cb48c098",
        device_code: "dc-secret-123",
        grant_type: "urn:ietf:params:oauth:grant-type:device_code"
      })
      for (const r of requests) {
        assert.strictEqual(r.headers["accept"], "application/json")
        assert.strictEqual(r.headers["x-msh-device-id"], "00000000-0000-4000-8000-000000000001")
        for (const h of ["x-msh-platform", "x-msh-version", "x-msh-device-name", "x-msh-device-model", "x-msh-os-version"]) {
          assert.match(r.headers[h] ?? "", /^[\x20-\x7e]+$/, h)
        }
      }
    }).pipe(Effect.provide(layer))
  })

  it.effect("slow_down twice: +5 s for that poll and every later one", () => {
    const { requests, layer } = setup([
      deviceAuth(),
      oauthError("slow_down"),
      oauthError("slow_down"),
      oauthError("authorization_pending"),
      tokens()
    ])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      yield* Fiber.join(fiber)
      const t = pollTimes(requests)
      const gaps = t.map((x, i) => x - (i === 0 ? 0 : t[i - 1]!))
      assert.deepStrictEqual(gaps, [5250, 10250, 15250, 15250])
    }).pipe(Effect.provide(layer))
  })

  it.effect("interval absent: defaults to 5 s", () => {
    const { requests, layer } = setup([deviceAuth({ interval: undefined }), tokens()])
    return Effect.gen(function*() {
      const { fiber } = yield* run(30)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(pollTimes(requests), [5250])
    }).pipe(Effect.provide(layer))
  })

  it.effect("access_denied stops with a message that says the user refused", () => {
    const { requests, layer } = setup([deviceAuth(), oauthError("authorization_pending"), oauthError("access_denied")])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "AccessDeniedError")
      assert.match(error.message, /refused/)
      assert.match(error.message, /kimi-auth login/)
      assert.strictEqual(pollTimes(requests).length, 2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("expired_token from the server stops and says to log in again", () => {
    const { layer } = setup([deviceAuth(), oauthError("expired_token")])
    return Effect.gen(function*() {
      const { fiber } = yield* run(30)
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "DeviceCodeExpiredError")
      assert.match(error.message, /kimi-auth login/)
    }).pipe(Effect.provide(layer))
  })

  it.effect("local deadline from expires_in: no poll after the code is dead, even if the server keeps saying pending", () => {
    const { requests, layer } = setup([deviceAuth({ expires_in: 12 }), oauthError("authorization_pending")])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const fiber = yield* Effect.forkChild(Effect.flatMap(flow.start, (a) => flow.awaitTokens(a)))
      yield* TestClock.adjust("11 seconds")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("2 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      assert.strictEqual(error._tag, "DeviceCodeExpiredError")
      assert.deepStrictEqual(pollTimes(requests), [5250, 10500])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a 503 (HTML) after approval is retried with backoff, not fatal", () => {
    const { requests, layer } = setup([
      deviceAuth(),
      oauthError("authorization_pending"),
      { status: 503, body: "<html><body>Service Unavailable</body></html>", headers: { "content-type": "text/html" } },
      tokens(7)
    ])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(Redacted.value(result.accessToken), "at-7")
      // after the fault the wait doubles (10 s) before the next poll
      assert.deepStrictEqual(pollTimes(requests), [5250, 10500, 20750])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a network error is retried with doubling backoff inside the deadline", () => {
    const { requests, layer } = setup([deviceAuth(), network, network, tokens(2)])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(Redacted.value(result.accessToken), "at-2")
      assert.deepStrictEqual(pollTimes(requests), [5250, 15500, 35750])
    }).pipe(Effect.provide(layer))
  })

  it.effect("429 with Retry-After is honoured", () => {
    const { requests, layer } = setup([deviceAuth(), json(429, { error: "rate_limited" }, { "retry-after": "30" }), tokens()])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(pollTimes(requests), [5250, 35500])
    }).pipe(Effect.provide(layer))
  })

  it.effect("a request that hangs times out as a network error and is retried", () => {
    const { requests, layer } = setup([deviceAuth(), hang, tokens(3)])
    return Effect.gen(function*() {
      const { fiber } = yield* run(120)
      const result = yield* Fiber.join(fiber)
      assert.strictEqual(Redacted.value(result.accessToken), "at-3")
      // poll at 5.25 hangs until the 10 s timeout (15.25), then backs off 10 s + margin
      assert.deepStrictEqual(pollTimes(requests), [5250, 25500])
    }).pipe(Effect.provide(layer))
  })

  it.effect("interruption stops polling at once", () => {
    const { requests, layer } = setup([deviceAuth(), oauthError("authorization_pending")])
    return Effect.gen(function*() {
      const { fiber } = yield* run(6)
      assert.strictEqual(pollTimes(requests).length, 1)
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("10 minutes")
      assert.strictEqual(pollTimes(requests).length, 1)
    }).pipe(Effect.provide(layer))
  })

  const malformed: ReadonlyArray<[string, Step, RegExp]> = [
    ["HTML 200", { status: 200, body: "<html>oops</html>", headers: { "content-type": "text/html" } }, /not JSON/],
    ["empty 200", { status: 200, body: "" }, /\(empty body\)/],
    ["JSON without access_token", json(200, { refresh_token: "rt-leak", expires_in: 900 }), /not a valid token response/],
    ["expires_in as a string", json(200, { access_token: "at-leak", refresh_token: "rt", expires_in: "soon" }), /not a valid/],
    ["400 that is not an RFC 6749 error", { status: 400, body: "Bad Request" }, /not an RFC 6749 error/],
    ["truncated JSON", { status: 200, body: '{"access_token": "at-leak' }, /not JSON/],
    ["no refresh_token", json(200, { access_token: "at-leak", expires_in: 900 }), /without a refresh_token/]
  ]
  for (const [name, step, pattern] of malformed) {
    it.effect(`malformed poll response (${name}) is a typed InvalidResponseError without secrets`, () => {
      const { layer } = setup([deviceAuth(), step])
      return Effect.gen(function*() {
        const { fiber } = yield* run(30)
        const error = yield* Effect.flip(Fiber.join(fiber))
        assert.strictEqual(error._tag, "InvalidResponseError")
        assert.match(error.message, pattern)
        assert.notMatch(error.message, /at-leak|rt-leak|dc-secret/)
        if (error._tag === "InvalidResponseError") assert.isNumber(error.status)
      }).pipe(Effect.provide(layer))
    })
  }

  it.effect("a 502 or a dropped connection on the device authorization request is retried with backoff", () => {
    const { requests, layer } = setup([{ status: 502, body: "<html>Bad Gateway</html>" }, network, deviceAuth()])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const fiber = yield* Effect.forkChild(flow.start)
      yield* TestClock.adjust("10 seconds")
      const auth = yield* Fiber.join(fiber)
      assert.strictEqual(auth.userCode, "WDJB-MJHT")
      assert.strictEqual(requests.length, 3)
      const [a, b, c] = requests.map((r) => r.at)
      assert.isTrue(b! - a! >= 800 && b! - a! <= 1200, `first backoff ${b! - a!}`)
      assert.isTrue(c! - b! >= 1600 && c! - b! <= 2400, `second backoff ${c! - b!}`)
    }).pipe(Effect.provide(layer))
  })

  it.effect("the device authorization request gives up after 5 attempts with the typed error", () => {
    const { requests, layer } = setup([network])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const fiber = yield* Effect.forkChild(Effect.flip(flow.start))
      yield* TestClock.adjust("60 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(requests.length, 5)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a device authorization answer with a non-http verification_uri is refused", () => {
    const { layer } = setup([deviceAuth({ verification_uri: "javascript:alert(1)" })])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const error = yield* Effect.flip(flow.start)
      assert.strictEqual(error._tag, "InvalidResponseError")
    }).pipe(Effect.provide(layer))
  })

  it.effect("verification_uri_complete is optional", () => {
    const { layer } = setup([deviceAuth({ verification_uri_complete: undefined })])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const auth = yield* flow.start
      assert.isUndefined(auth.verificationUriComplete)
      assert.strictEqual(auth.verificationUri, "https://auth.test/device")
    }).pipe(Effect.provide(layer))
  })

  it.effect("invalid_client on device authorization is an OAuthError that says what to do", () => {
    const { layer } = setup([oauthError("invalid_client", 401)])
    return Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const error = yield* Effect.flip(flow.start)
      assert.strictEqual(error._tag, "OAuthError")
      assert.match(error.message, /client id/)
    }).pipe(Effect.provide(layer))
  })
})
