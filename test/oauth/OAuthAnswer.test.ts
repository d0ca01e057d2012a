/**
 * The answer checks of `src/oauth/OAuthAnswer.ts`, one by one: what an answer is
 * by its status, the field checks (bearer tokens, lifetimes, printable codes,
 * URIs, token type, scope), and the three body decoders, without a server.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import {
  answeredRefresh,
  answerKind,
  decodeDeviceAuthorization,
  decodeRefusal,
  decodeTokens,
  DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS,
  DEFAULT_POLL_INTERVAL_SECONDS,
  describeBody,
  deviceCodeLifetime,
  isUserCode,
  MAX_DEVICE_CODE_LIFETIME_SECONDS,
  MAX_POLL_INTERVAL_SECONDS,
  pollInterval,
  positiveNumber,
  printableHttpUrl,
  type RawResponse,
  scopeOf,
  tokenLifetime,
  tokenTypeOf
} from "../../src/oauth/OAuthAnswer.js"

const URL_ = "https://auth.example.test/api/oauth/token"
const raw = (status: number, body: unknown, retryAfter?: string): RawResponse => {
  const text = typeof body === "string" ? body : JSON.stringify(body)
  return { url: URL_, status, retryAfter, body: text, safeBody: text }
}
const issuer = { oauthHost: "https://auth.example.test", apiBaseUrl: "https://api.example.test/coding/v1", region: "global" as const }
const SENT = Redacted.make("rt-sent-0123456789")

describe("answerKind: a token, a server in trouble, or a refusal", () => {
  it("2xx is a success, 5xx and 429 unavailable, every other status a refusal", () => {
    for (const s of [200, 201, 204, 299]) assert.strictEqual(answerKind(s), "success")
    for (const s of [500, 502, 503, 599, 429]) assert.strictEqual(answerKind(s), "unavailable")
    for (const s of [100, 199, 300, 400, 401, 403, 404, 428, 430, 499]) assert.strictEqual(answerKind(s), "refusal")
  })
})

describe("field checks", () => {
  it("printableHttpUrl keeps http(s) URLs, normalised, and refuses other schemes, spaces, control characters and long ones", () => {
    assert.strictEqual(printableHttpUrl("https://kimi.example/device"), "https://kimi.example/device")
    assert.strictEqual(printableHttpUrl("HTTP://Kimi.Example"), "http://kimi.example/")
    for (const bad of ["javascript:alert(1)", "file:///etc/passwd", "https://a b", "https://a\u001b[2J", "https://a\u0085", "nope", 42, null, undefined]) {
      assert.strictEqual(printableHttpUrl(bad), undefined, String(bad))
    }
    assert.strictEqual(printableHttpUrl(`https://a.example/${"x".repeat(2048)}`), undefined)
  })

  it("isUserCode takes short codes of letters, digits, dashes and spaces only", () => {
    for (const good of ["ABCD-1234", "abcd 1234", "7"]) assert.isTrue(isUserCode(good), good)
    for (const bad of ["", "-ABCD", "AB\nCD", "AB\u001b[31m", "x".repeat(65), 1234, null]) assert.isFalse(isUserCode(bad), String(bad))
  })

  it("positiveNumber reads positive finite numbers, also quoted", () => {
    assert.strictEqual(positiveNumber(5), 5)
    assert.strictEqual(positiveNumber(" 7.5 "), 7.5)
    for (const bad of [0, -1, Number.POSITIVE_INFINITY, Number.NaN, "-3", "5s", "", null, undefined, true]) {
      assert.strictEqual(positiveNumber(bad), undefined, String(bad))
    }
  })

  it("tokenLifetime believes a year at most, takes numeric strings, and tells a non-number apart from a missing one", () => {
    assert.strictEqual(tokenLifetime(3600), 3600)
    assert.strictEqual(tokenLifetime("3600"), 3600)
    assert.strictEqual(tokenLifetime("3.6e3"), 3600)
    for (const unbelievable of [undefined, null, 0, -5, "-5", Number.POSITIVE_INFINITY, 400 * 24 * 3600]) {
      assert.strictEqual(tokenLifetime(unbelievable), DEFAULT_ACCESS_TOKEN_LIFETIME_SECONDS, String(unbelievable))
    }
    for (const notANumber of ["soon", "", true, {}, []]) assert.strictEqual(tokenLifetime(notANumber), undefined, JSON.stringify(notANumber))
  })

  it("deviceCodeLifetime and pollInterval cut what they are told to believable bounds", () => {
    assert.strictEqual(deviceCodeLifetime(600), 600)
    assert.strictEqual(deviceCodeLifetime(10 ** 9), MAX_DEVICE_CODE_LIFETIME_SECONDS)
    assert.strictEqual(deviceCodeLifetime(0), undefined)
    assert.strictEqual(pollInterval(undefined), DEFAULT_POLL_INTERVAL_SECONDS)
    assert.strictEqual(pollInterval("x"), DEFAULT_POLL_INTERVAL_SECONDS)
    assert.strictEqual(pollInterval(0.1), 1)
    assert.strictEqual(pollInterval("10"), 10)
    assert.strictEqual(pollInterval(10 ** 6), MAX_POLL_INTERVAL_SECONDS)
  })

  it("tokenTypeOf and scopeOf keep printable values only, else the defaults", () => {
    assert.strictEqual(tokenTypeOf("bearer"), "bearer")
    for (const bad of ["Bearer\r\nX-Evil: 1", "", "1abc", "x".repeat(33), 7]) assert.strictEqual(tokenTypeOf(bad), "Bearer", String(bad))
    assert.strictEqual(scopeOf(" kimi-code profile "), "kimi-code profile")
    for (const bad of ["a\"b", "a\\b", "a\nb", "\u001b[2J", 3, null]) assert.strictEqual(scopeOf(bad), "", String(bad))
  })

  it("answeredRefresh keeps the sent refresh token when none comes back, and says when a new one rotated it", () => {
    for (const none of [undefined, null, ""]) {
      const r = answeredRefresh(none, SENT)
      assert.isTrue(r.ok && r.refresh === SENT && r.rotated === undefined)
    }
    const same = answeredRefresh(Redacted.value(SENT), SENT)
    assert.isTrue(same.ok && same.rotated === undefined && Redacted.value(same.refresh!) === Redacted.value(SENT))
    const rotated = answeredRefresh("rt-new-abcdef", SENT)
    assert.isTrue(rotated.ok && rotated.rotated !== undefined && Redacted.value(rotated.rotated) === "rt-new-abcdef")
    const login = answeredRefresh("rt-first", undefined)
    assert.isTrue(login.ok && login.rotated !== undefined)
    for (const bad of ["rt with space", "rt\r\nX: 1", 12, {}]) assert.isFalse(answeredRefresh(bad, SENT).ok, String(bad))
  })
})

describe("describeBody: what a user may see of an answer", () => {
  it("of a 2xx JSON body only the field names, never a value; of anything else a scrubbed excerpt", () => {
    const shown = describeBody(raw(200, { access_token: "at-secret-value", refresh_token: "rt-secret-value" }))
    assert.strictEqual(shown, "a JSON object with access_token, refresh_token (values not shown)")
    assert.strictEqual(describeBody(raw(200, ["at-secret-value"])), "JSON of type array (not shown)")
    assert.strictEqual(describeBody(raw(200, "null")), "JSON of type null (not shown)")
    assert.strictEqual(describeBody(raw(502, "<html>bad gateway</html>")), "<html>bad gateway</html>")
    assert.notInclude(describeBody(raw(400, `{"access_token":"at-secret-value"}`)), "at-secret-value")
  })
})

describe("decodeTokens", () => {
  it.effect("decodes a token answer, stamps the issuer and the expiry from the clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000_000_000)
      const t = yield* decodeTokens(raw(200, { access_token: "at-1", refresh_token: "rt-1", expires_in: "600", scope: "s", token_type: "bearer" }), undefined, issuer)
      assert.strictEqual(Redacted.value(t.accessToken), "at-1")
      assert.strictEqual(Redacted.value(t.refreshToken), "rt-1")
      assert.strictEqual(t.expiresIn, 600)
      assert.strictEqual(t.expiresAt, 1_000_000_000 + 600)
      assert.strictEqual(t.tokenType, "bearer")
      assert.strictEqual(t.scope, "s")
      assert.strictEqual(t.oauthHost, issuer.oauthHost)
      assert.strictEqual(t.region, "global")
    }))

  it.effect("a refresh answer without refresh_token keeps the sent one; a login answer without one is invalid", () =>
    Effect.gen(function*() {
      const t = yield* decodeTokens(raw(200, { access_token: "at-1" }), SENT, issuer)
      assert.strictEqual(Redacted.value(t.refreshToken), Redacted.value(SENT))
      const e = yield* Effect.flip(decodeTokens(raw(200, { access_token: "at-1" }), undefined, issuer))
      assert.include(e.message, "without a refresh_token")
    }))

  it.effect("garbage is an InvalidResponseError with its reason; a rotated refresh token is handed back only to a refresh", () =>
    Effect.gen(function*() {
      const notJson = yield* Effect.flip(decodeTokens(raw(200, "<html>"), SENT, issuer))
      assert.include(notJson.message, "a body that is not JSON (expected a token response)")
      const notObject = yield* Effect.flip(decodeTokens(raw(200, [1]), SENT, issuer))
      assert.include(notObject.message, "a JSON body that is not an object")
      const badRefresh = yield* Effect.flip(decodeTokens(raw(200, { access_token: "at", refresh_token: "a b" }), SENT, issuer))
      assert.strictEqual(badRefresh.reason, "invalid-token")
      assert.strictEqual(badRefresh.rotatedRefreshToken, undefined)
      const noAccess = yield* Effect.flip(decodeTokens(raw(200, { refresh_token: "rt-new" }), SENT, issuer))
      assert.strictEqual(noAccess.reason, "malformed")
      assert.strictEqual(Redacted.value(noAccess.rotatedRefreshToken!), "rt-new")
      const badAccess = yield* Effect.flip(decodeTokens(raw(200, { access_token: "at\r\nX: 1", refresh_token: "rt-new" }), SENT, issuer))
      assert.strictEqual(badAccess.reason, "invalid-token")
      assert.strictEqual(Redacted.value(badAccess.rotatedRefreshToken!), "rt-new")
      const loginBadAccess = yield* Effect.flip(decodeTokens(raw(200, { access_token: 7, refresh_token: "rt-new" }), undefined, issuer))
      assert.strictEqual(loginBadAccess.rotatedRefreshToken, undefined)
      const badLifetime = yield* Effect.flip(decodeTokens(raw(200, { access_token: "at", refresh_token: "rt-new", expires_in: "soon" }), SENT, issuer))
      assert.include(badLifetime.message, "expires_in is not a number")
      assert.strictEqual(Redacted.value(badLifetime.rotatedRefreshToken!), "rt-new")
      for (const e of [notJson, badRefresh, noAccess, badAccess, badLifetime]) assert.notInclude(e.message, "rt-new")
    }))
})

describe("decodeDeviceAuthorization", () => {
  const good = { device_code: "dc-1", user_code: "ABCD-1234", verification_uri: "https://kimi.example/device", expires_in: 600 }

  it.effect("decodes an answer and fills in the defaults", () =>
    Effect.gen(function*() {
      const d = yield* decodeDeviceAuthorization(raw(200, good))
      assert.strictEqual(Redacted.value(d.deviceCode), "dc-1")
      assert.strictEqual(d.userCode, "ABCD-1234")
      assert.strictEqual(d.verificationUriComplete, undefined)
      assert.strictEqual(d.expiresIn, 600)
      assert.strictEqual(d.interval, DEFAULT_POLL_INTERVAL_SECONDS)
    }))

  it.effect("each missing or unprintable field is named", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<[Record<string, unknown>, string]> = [
        [{ ...good, device_code: "d c" }, "device_code"],
        [{ ...good, user_code: "\u001b[2J" }, "user_code"],
        [{ ...good, verification_uri: "javascript:x" }, "verification_uri"],
        [{ ...good, expires_in: 0 }, "expires_in"]
      ]
      for (const [body, field] of cases) {
        const e = yield* Effect.flip(decodeDeviceAuthorization(raw(200, body)))
        assert.strictEqual(e._tag, "InvalidResponseError")
        assert.include(e.message, field)
      }
    }))
})

describe("decodeRefusal", () => {
  it.effect("5xx and 429 are a ServerError with the Retry-After, capped at an hour", () =>
    Effect.gen(function*() {
      const e = yield* Effect.flip(decodeRefusal(raw(429, "slow down", "7200")))
      assert.strictEqual(e._tag, "ServerError")
      assert.strictEqual(e._tag === "ServerError" && e.retryAfterMillis, 3_600_000)
    }))

  it.effect("a 4xx must be an RFC 6749 error body, else it is invalid", () =>
    Effect.gen(function*() {
      const body = yield* decodeRefusal(raw(400, { error: "authorization_pending", error_description: null }))
      assert.strictEqual(body.error, "authorization_pending")
      for (const bad of ["<html>", { error: "" }, { message: "no" }, [1]]) {
        const e = yield* Effect.flip(decodeRefusal(raw(400, bad)))
        assert.strictEqual(e._tag, "InvalidResponseError")
      }
    }))

  it.effect("reads only the scrubbed body", () =>
    Effect.gen(function*() {
      const body = yield* decodeRefusal({ ...raw(400, { error: "invalid_grant" }), body: `{"error":"rt-secret"}` })
      assert.strictEqual(body.error, "invalid_grant")
    }))
})
