/** Tokens, lifetimes and token files from outside: what is accepted, refused and clamped. */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { decodeTokenFile, encodeTokenFile, TokenSet } from "../../src/tokens/TokenSet.js"
import {
  isBearerToken,
  isDueAt,
  MAX_TOKEN_LENGTH,
  parseTokenFileText,
  sanitizeExpiresAt,
  sanitizeLifetime
} from "../../src/light/TokenValidation.js"

const file = (fields: Record<string, unknown>) =>
  JSON.stringify({ access_token: "at-1", refresh_token: "rt-1", expires_at: 2_000_000_000, expires_in: 900, ...fields })

describe("isBearerToken (RFC 6750 b64token, at most 8 KiB)", () => {
  it("accepts JWTs and opaque tokens", () => {
    assert.isTrue(isBearerToken("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_~+/"))
    assert.isTrue(isBearerToken("abc=="))
    assert.isTrue(isBearerToken("a".repeat(MAX_TOKEN_LENGTH)))
  })
  it("refuses CR/LF (header injection), spaces, quotes, controls, non-ASCII, empty and oversized values", () => {
    for (const bad of ["at-x\r\nX-Injected: yes", "at x", "at\"x", "at\u0000x", "at\tx", "tökén", "", "=abc", "a=b", "a".repeat(MAX_TOKEN_LENGTH + 1)]) {
      assert.isFalse(isBearerToken(bad), JSON.stringify(bad.slice(0, 20)))
    }
    assert.isFalse(isBearerToken(42))
    assert.isFalse(isBearerToken(undefined))
  })
})

describe("lifetimes", () => {
  it("sanitizeLifetime keeps (0, one year], refuses zero, negative, non-finite and absurd", () => {
    assert.strictEqual(sanitizeLifetime(900), 900)
    for (const bad of [0, -1, 1e308, Infinity, NaN, 400 * 86400, "900", null]) assert.isUndefined(sanitizeLifetime(bad))
  })
  it("sanitizeExpiresAt converts milliseconds and clamps absurd values to 0 (expired, so refreshed)", () => {
    assert.strictEqual(sanitizeExpiresAt(1_700_000_000), 1_700_000_000)
    assert.strictEqual(sanitizeExpiresAt(1_700_000_000_123), 1_700_000_000)
    assert.strictEqual(sanitizeExpiresAt(1e308), 0)
    assert.strictEqual(sanitizeExpiresAt(-5), 0)
    assert.strictEqual(sanitizeExpiresAt(Infinity), 0)
    assert.isUndefined(sanitizeExpiresAt("soon"))
    assert.isUndefined(sanitizeExpiresAt(NaN))
  })
  it("isDueAt: a token with a clamped expiry is due at once", () => {
    assert.isTrue(isDueAt(0, 0, 1_700_000_000, 300))
    assert.isFalse(isDueAt(1_700_000_900, 900, 1_700_000_000, 300))
  })
})

describe("parseTokenFileText", () => {
  it("reads Kimi's own fields, and the issuer when recorded", () => {
    const r = parseTokenFileText(file({ oauth_host: "https://auth.kimi.ai", api_base_url: "https://api.kimi.ai/coding/v1", region: "global", device_id: "d" }))
    assert.isTrue(r.ok)
    if (!r.ok) return
    assert.strictEqual(r.value.oauthHost, "https://auth.kimi.ai")
    assert.strictEqual(r.value.region, "global")
    assert.strictEqual(r.value.deviceId, "d")
    assert.strictEqual(r.value.tokenType, "Bearer")
  })
  it("refuses a stored token with CR/LF, without the token in the reason", () => {
    const r = parseTokenFileText(file({ access_token: "at-secret\r\nX-Injected: yes" }))
    assert.isFalse(r.ok)
    if (r.ok) return
    assert.match(r.reason, /RFC 6750/)
    assert.notInclude(r.reason, "at-secret")
  })
  it("clamps an absurd expiry instead of trusting it, and drops an unusable stored issuer", () => {
    const r = parseTokenFileText(file({ expires_at: 1e308, expires_in: 1e308, oauth_host: "http://evil.example", region: "mars" }))
    assert.isTrue(r.ok)
    if (!r.ok) return
    assert.strictEqual(r.value.expiresAt, 0)
    assert.strictEqual(r.value.expiresIn, 0)
    assert.isUndefined(r.value.oauthHost)
    assert.isUndefined(r.value.region)
  })
  it("explains empty, non-JSON, non-object and incomplete files", () => {
    const reason = (t: string) => {
      const r = parseTokenFileText(t)
      return r.ok ? "" : r.reason
    }
    assert.match(reason(""), /empty/)
    assert.match(reason("{"), /not valid JSON/)
    assert.match(reason("[]"), /JSON object/)
    assert.match(reason(JSON.stringify({ access_token: "a" })), /refresh_token/)
    assert.match(reason(JSON.stringify({ access_token: "a", refresh_token: "b" })), /expires_at/)
  })
})

describe("the token file round trip keeps the issuer", () => {
  it("encode then decode", () =>
    Effect.gen(function*() {
      const tokens = new TokenSet({
        accessToken: Redacted.make("at-1"),
        refreshToken: Redacted.make("rt-1"),
        tokenType: "Bearer",
        expiresIn: 900,
        scope: "kimi-code",
        expiresAt: 2_000_000_000,
        oauthHost: "https://auth.kimi.ai",
        apiBaseUrl: "https://api.kimi.ai/coding/v1",
        region: "global"
      })
      const text = encodeTokenFile(tokens, "device-1")
      assert.include(text, "\"oauth_host\": \"https://auth.kimi.ai\"")
      const back = yield* decodeTokenFile(text)
      assert.strictEqual(back.tokens.region, "global")
      assert.strictEqual(back.tokens.apiBaseUrl, "https://api.kimi.ai/coding/v1")
      assert.strictEqual(back.deviceId, "device-1")
    }).pipe(Effect.runPromise))
})
