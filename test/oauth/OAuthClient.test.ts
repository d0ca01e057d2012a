/**
 * What the OAuth client does with a server that misbehaves: echoed secrets
 * (scripted client), and on loopback through the real fetch client a huge
 * `Content-Length`, an endless or dripping body, redirects, and bad values.
 */
import { assert, describe, it } from "@effect/vitest"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientResponse from "effect/http/HttpClientResponse"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { type Hostile, type HostileServer, startHostileServer } from "../support/hostileServer.js"
import { json, makeScripted, type Step } from "../support/scripted.js"
import { reachableText, secretReach } from "../support/secretReach.js"
import { identityLayer } from "../support/settings.js"

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

// ---------------------------------------------------------------------------
// A hostile server on loopback, through the real fetch client.

const SENT = "rt-sent-0123456789abcdefghijklmnopqrstuv"

const loopback = (url: string, options: { readonly requestTimeout?: Duration.Input; readonly refreshAnswerTimeout?: Duration.Input } = {}) =>
  OAuthClient.layer.pipe(
    Layer.provide(Layer.mergeAll(FetchHttpClient.layer, identityLayer({ oauthHost: url, ...options })))
  )

const refreshAt = (url: string, options: { readonly requestTimeout?: Duration.Input; readonly refreshAnswerTimeout?: Duration.Input } = {}) =>
  Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SENT))).pipe(Effect.provide(loopback(url, options)))

/** The server's count of connections the client hung up on, once it reaches `n` (or after 10 s: a busy machine is slow to report). */
const hangUpsWithin = (server: HostileServer, n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 200 && server.hangUps() < n; i++) yield* Effect.sleep("50 millis")
    return server.hangUps()
  })

const withServer = <A, E>(mode: Hostile, f: (server: HostileServer) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(Effect.promise(() => startHostileServer(mode)), f, (s) => Effect.promise(() => s.close()))

describe("OAuthClient against a hostile server: size cap and deadline", () => {
  it.live("a 2 GB Content-Length is refused before reading, as a typed InvalidResponseError (no V8 abort)", () =>
    withServer({ kind: "huge-length" }, (server) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(refreshAt(server.url))
        assert.strictEqual(error._tag, "InvalidResponseError")
        if (error._tag !== "InvalidResponseError") return
        assert.strictEqual(error.reason, "too-large")
        assert.match(error.message, /too large/)
        assert.match(error.message, /2147483648 bytes declared/)
        // The client hung up: the server could not push more than a few socket buffers.
        assert.strictEqual(yield* hangUpsWithin(server, 1), 1)
        assert.isBelow(server.sentBytes(), 32 * 1024 * 1024)
      })))

  it.live("an endless body is cut at 64 KiB and the connection aborted; memory stays flat", () =>
    withServer({ kind: "endless" }, (server) =>
      Effect.gen(function*() {
        const before = process.memoryUsage().rss
        const error = yield* Effect.flip(refreshAt(server.url))
        assert.strictEqual(error._tag, "InvalidResponseError")
        if (error._tag === "InvalidResponseError") assert.strictEqual(error.reason, "too-large")
        assert.match(error.message, /more than the 64 KiB allowed/)
        assert.strictEqual(yield* hangUpsWithin(server, 1), 1)
        assert.isBelow(server.sentBytes(), 32 * 1024 * 1024)
        assert.isBelow(process.memoryUsage().rss - before, 64 * 1024 * 1024)
      })))

  it.live("a gzip bomb (an endless stream of compressed zeros) is cut at 64 KiB unpacked", () =>
    withServer({ kind: "gzip-bomb" }, (server) =>
      Effect.gen(function*() {
        const before = process.memoryUsage().rss
        const error = yield* Effect.flip(refreshAt(server.url))
        assert.strictEqual(error._tag, "InvalidResponseError")
        if (error._tag === "InvalidResponseError") assert.strictEqual(error.reason, "too-large")
        assert.strictEqual(yield* hangUpsWithin(server, 1), 1)
        assert.isBelow(process.memoryUsage().rss - before, 64 * 1024 * 1024)
      })))

  it.live("1 MiB of response headers is a typed NetworkError, not a crash", () =>
    withServer({ kind: "huge-headers" }, (server) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(refreshAt(server.url))
        assert.strictEqual(error._tag, "NetworkError")
        assert.deepStrictEqual(secretReach(error, SENT), [])
      })))

  it.live("a body dripped slower than the deadline ends at the deadline as a NetworkError, and the request is aborted", () =>
    withServer({ kind: "slow-drip", everyMillis: 50 }, (server) =>
      Effect.gen(function*() {
        const started = Date.now()
        const error = yield* Effect.flip(refreshAt(server.url, { requestTimeout: "1 second", refreshAnswerTimeout: "1 second" }))
        const took = Date.now() - started
        assert.strictEqual(error._tag, "NetworkError")
        assert.match(error.message, /did not answer within 1 s/)
        assert.isAtLeast(took, 900)
        assert.isBelow(took, 10_000)
        assert.strictEqual(yield* hangUpsWithin(server, 1), 1)
      })))
})

describe("OAuthClient never follows a redirect", () => {
  it.live("a 302 to another origin is refused; the other origin sees no request", () =>
    withServer({ kind: "json", body: { access_token: "at-elsewhere", refresh_token: "rt-elsewhere", expires_in: 900 } }, (other) =>
      withServer({ kind: "redirect", location: "/" }, (server) =>
        Effect.gen(function*() {
          for (const status of [301, 302, 303, 307, 308]) {
            server.setMode({ kind: "redirect", status, location: `${other.url}/api/oauth/token` })
            const error = yield* Effect.flip(refreshAt(server.url))
            assert.strictEqual(error._tag, "InvalidResponseError")
            if (error._tag !== "InvalidResponseError") return
            assert.strictEqual(error.reason, "redirect")
            assert.strictEqual(error.status, status)
            assert.match(error.message, /redirect to http:\/\/127\.0\.0\.1:\d+, which was refused/)
          }
          assert.strictEqual(other.requests.length, 0)
        }))))

  it.effect("an https to http redirect is refused and named a downgrade", () =>
    Effect.gen(function*() {
      const error = yield* refreshError({ status: 302, body: "", headers: { location: "http://auth.test/api/oauth/token" } })
      assert.strictEqual(error._tag, "InvalidResponseError")
      assert.match(error.message, /downgrade https to plain http/)
    }))

  it.effect("an answer that a redirect-following HttpClient fetched from elsewhere is refused", () =>
    Effect.gen(function*() {
      const followed = HttpClient.make((request) =>
        Effect.sync(() => {
          const res = new Response(JSON.stringify({ access_token: "at-x", refresh_token: "rt-x" }), { status: 200 })
          Object.defineProperty(res, "url", { value: "https://evil.test/steal" })
          return HttpClientResponse.fromWeb(request, res)
        })
      )
      const error = yield* Effect.flatMap(OAuthClient, (c) => Effect.flip(c.refreshToken(Redacted.make(SECRET)))).pipe(
        Effect.provide(OAuthClient.layer.pipe(Layer.provide(Layer.merge(Layer.succeed(HttpClient.HttpClient, followed), identityLayer()))))
      )
      assert.strictEqual(error._tag, "InvalidResponseError")
      assert.match(error.message, /https:\/\/evil\.test after a redirect, which was refused/)
    }))
})

describe("OAuthClient validates the values it is given", () => {
  const refreshOk = (body: unknown) =>
    Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SECRET))).pipe(Effect.provide(clientWith(json(200, body))))

  for (
    const [name, access] of [
      ["a CR/LF header injection", "at-x\r\nX-Injected: yes"],
      ["a space", "at x"],
      ["a quote", "at\"x"],
      ["9 KiB", "a".repeat(9 * 1024)],
      ["a number", 12345]
    ] as const
  ) {
    it.effect(`an access token with ${name} is refused and never returned`, () =>
      Effect.gen(function*() {
        const error = yield* refreshError(json(200, { access_token: access, expires_in: 900 }))
        assert.strictEqual(error._tag, "InvalidResponseError")
        if (typeof access === "string") assert.notInclude(reachableText(error), access.slice(0, 40))
      }))
  }

  it.effect("a rotated refresh token that is not a bearer token is refused", () =>
    Effect.gen(function*() {
      const error = yield* refreshError(json(200, { access_token: "at-ok", refresh_token: "rt\nbad", expires_in: 900 }))
      assert.strictEqual(error._tag, "InvalidResponseError")
      assert.match(error.message, /refresh_token that is not a valid bearer token/)
    }))

  it.effect("a valid new refresh token with an unusable access token is handed back (redacted) so the login survives", () =>
    Effect.gen(function*() {
      const error = yield* refreshError(json(200, { access_token: "at\r\nX: y", refresh_token: "rt-rotated-ok", expires_in: 900 }))
      assert.strictEqual(error._tag, "InvalidResponseError")
      if (error._tag !== "InvalidResponseError") return
      assert.strictEqual(error.reason, "invalid-token")
      assert.isDefined(error.rotatedRefreshToken)
      assert.strictEqual(Redacted.value(error.rotatedRefreshToken!), "rt-rotated-ok")
      assert.deepStrictEqual(secretReach(error, "rt-rotated-ok"), [])
    }))

  for (const [name, lifetime] of [["1e308", 1e308], ["zero", 0], ["negative", -60], ["two years", 2 * 366 * 86400]] as const) {
    it.effect(`an absurd expires_in (${name}) is not believed: the default 900 s applies`, () =>
      Effect.gen(function*() {
        const tokens = yield* refreshOk({ access_token: "at-ok", refresh_token: "rt-ok", expires_in: lifetime })
        assert.strictEqual(tokens.expiresIn, 900)
        assert.isTrue(Number.isFinite(tokens.expiresAt))
        assert.strictEqual(new Date(tokens.expiresAt * 1000).toISOString().length, 24)
      }))
  }

  it.effect("an expires_in that overflows to Infinity in JSON is not believed either", () =>
    Effect.gen(function*() {
      const tokens = yield* Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SECRET))).pipe(
        Effect.provide(clientWith({ status: 200, body: '{"access_token":"at-ok","refresh_token":"rt-ok","expires_in":1e400}' }))
      )
      assert.strictEqual(tokens.expiresIn, 900)
    }))

  it.effect("a token_type or scope with control characters is replaced by the defaults", () =>
    Effect.gen(function*() {
      const tokens = yield* refreshOk({ access_token: "at-ok", refresh_token: "rt-ok", token_type: "Bearer\r\nX", scope: "a\u001b[31mb" })
      assert.strictEqual(tokens.tokenType, "Bearer")
      assert.strictEqual(tokens.scope, "")
    }))

  it.effect("a user code or verification URI with terminal escapes is refused; absurd intervals are clamped", () =>
    Effect.gen(function*() {
      const deviceAuth = (body: unknown) =>
        Effect.flatMap(OAuthClient, (c) => c.requestDeviceAuthorization).pipe(Effect.provide(clientWith(json(200, body))))
      const base = { device_code: "dc-ok", user_code: "ABCD-EFGH", verification_uri: "https://auth.test/device", expires_in: 900 }
      const e1 = yield* Effect.flip(deviceAuth({ ...base, user_code: "AB\u001b]0;pwned\u0007" }))
      assert.strictEqual(e1._tag, "InvalidResponseError")
      const e2 = yield* Effect.flip(deviceAuth({ ...base, verification_uri: "https://auth.test/\r\ndevice" }))
      assert.strictEqual(e2._tag, "InvalidResponseError")
      const ok = yield* deviceAuth({ ...base, expires_in: 1e308, interval: 1e9 })
      assert.strictEqual(ok.expiresIn, 3600)
      assert.strictEqual(ok.interval, 60)
    }))
})

describe("OAuthClient errors hold no secret in any encoding (util.inspect, JSON, every property)", () => {
  const received = "at-received-secret-0123456789abcdefghij"
  const cases: ReadonlyArray<[string, Step, string]> = [
    ["camelCase token keys in a 200 body", json(200, { accessToken: received, refreshToken: received }), received],
    ["a URL-encoded echo in a 502", { status: 502, body: `upstream got grant_type=refresh_token&refresh_token=${encodeURIComponent(SECRET + "/+=")}` }, SECRET + "/+="],
    ["a base64 echo in a 400", json(400, { error: "invalid_request", error_description: `got ${Buffer.from(`x${SECRET}`).toString("base64")}` }), SECRET],
    ["a base64url echo in a 500", { status: 500, body: Buffer.from(`refresh=${SECRET}`).toString("base64url") }, SECRET],
    ["a JSON-escaped echo in a 400", { status: 400, body: `{"error":"invalid_request","error_description":${JSON.stringify(`"${SECRET}/x"`).replace(/\//g, "\\/")}}` }, SECRET],
    ["a received token with CR/LF in a 200", json(200, { access_token: `${received}\r\nX: y`, expires_in: 900 }), received]
  ]
  for (const [name, step, secret] of cases) {
    it.effect(name, () =>
      Effect.gen(function*() {
        const sent = secret === received ? SECRET : secret
        const error = yield* Effect.flatMap(OAuthClient, (c) => Effect.flip(c.refreshToken(Redacted.make(sent)))).pipe(
          Effect.provide(clientWith(step))
        )
        assert.deepStrictEqual(secretReach(error, secret), [], `${error._tag}: ${error.message}`)
        assert.deepStrictEqual(secretReach(error, SECRET), [])
      }))
  }

  it.live("a network error keeps no request (and so no sent refresh token) in its cause", () =>
    Effect.gen(function*() {
      const server = yield* Effect.promise(() => startHostileServer({ kind: "endless" }))
      const url = server.url
      yield* Effect.promise(() => server.close())
      const error = yield* Effect.flip(refreshAt(url))
      assert.strictEqual(error._tag, "NetworkError")
      if (error._tag !== "NetworkError") return
      assert.isUndefined(error.cause)
      assert.match(error.reason ?? "", /TransportError/)
      assert.deepStrictEqual(secretReach(error, SENT), [])
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
