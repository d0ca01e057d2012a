/**
 * The decisions of `src/oauth/OAuthClient.ts`, each tested directly: which issuer
 * a login and a refresh belong to, which redirects are refused and which are
 * downgrades, what a refused poll means, and when a refused refresh means
 * the login is gone.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import {
  answeredElsewhere,
  foreignAnswerRefusal,
  grantRejected,
  isDowngrade,
  isGrantRejected,
  loginIssuer,
  oauthError,
  pollOutcome,
  redirectRefusal,
  refreshIssuer,
  refreshRefusal,
  tooLargeRefusal
} from "../../src/oauth/OAuthClient.js"

const settings = {
  oauthHost: "https://auth.kimi.com",
  oauthHostPinned: false,
  apiBaseUrl: "https://api.kimi.com/coding/v1",
  apiBaseUrlPinned: false,
  region: "global" as const
}
const cn = { oauthHost: "https://auth.moonshot.cn", apiBaseUrl: "https://api.moonshot.cn/coding/v1", region: "mainland-cn" as const }

describe("who issued a login, and where its refresh goes", () => {
  it("a device login is issued by the configured hosts and region", () => {
    assert.deepStrictEqual(loginIssuer(settings), { oauthHost: settings.oauthHost, apiBaseUrl: settings.apiBaseUrl, region: "global" })
  })

  it("a refresh goes to the issuer stored with the login, unless the settings pin a host", () => {
    assert.deepStrictEqual(refreshIssuer(settings, cn), cn)
    assert.deepStrictEqual(refreshIssuer(settings, undefined), loginIssuer(settings))
    assert.deepStrictEqual(refreshIssuer(settings, { oauthHost: cn.oauthHost }), {
      oauthHost: cn.oauthHost,
      apiBaseUrl: settings.apiBaseUrl,
      region: "global"
    })
    const pinned = { ...settings, oauthHostPinned: true }
    assert.deepStrictEqual(refreshIssuer(pinned, cn), { oauthHost: settings.oauthHost, apiBaseUrl: cn.apiBaseUrl, region: "mainland-cn" })
  })
})

describe("answers refused before their body is read", () => {
  const url = "https://auth.kimi.com/api/oauth/token"

  it("isDowngrade: https to plain http only", () => {
    assert.isTrue(isDowngrade(url, "http://evil.example"))
    assert.isFalse(isDowngrade(url, "https://evil.example"))
    assert.isFalse(isDowngrade("http://127.0.0.1:1/api/oauth/token", "http://evil.example"))
    assert.isFalse(isDowngrade(url, undefined))
  })

  it("redirectRefusal names the target origin (never its path) and a downgrade", () => {
    const down = redirectRefusal(url, 302, "http://evil.example/steal?refresh_token=x")
    assert.strictEqual(down.reason, "redirect")
    assert.strictEqual(down.status, 302)
    assert.include(down.message, "a redirect to http://evil.example, which was refused (it would downgrade https to plain http)")
    assert.notInclude(down.message, "steal")
    const relative = redirectRefusal(url, 307, "/elsewhere")
    assert.include(relative.message, "a redirect to https://auth.kimi.com, which was refused:")
    assert.include(redirectRefusal(url, 301, undefined).message, "HTTP 301 and a redirect, which was refused:")
  })

  it("answeredElsewhere: an answer from another URL than the one asked (a client that followed a redirect)", () => {
    assert.isFalse(answeredElsewhere("", url))
    assert.isFalse(answeredElsewhere("https://AUTH.kimi.com/api/oauth/token", url))
    assert.isTrue(answeredElsewhere("https://evil.example/api/oauth/token", url))
    const e = foreignAnswerRefusal(url, 200, "https://evil.example/x")
    assert.strictEqual(e.reason, "redirect")
    assert.include(e.message, "an answer from https://evil.example after a redirect, which was refused")
  })

  it("tooLargeRefusal says what was declared, or that the body ran past the cap", () => {
    assert.strictEqual(tooLargeRefusal(url, 200, 10 ** 9).reason, "too-large")
    assert.include(tooLargeRefusal(url, 200, 10 ** 9).message, "1000000000 bytes declared the 64 KiB allowed")
    assert.include(tooLargeRefusal(url, 200, undefined).message, "more than the 64 KiB allowed")
  })
})

describe("what a refusal means", () => {
  const run = <A, E>(e: Effect.Effect<A, E>) => Effect.runSyncExit(e)

  it("pollOutcome: pending and slow_down keep polling, access_denied and expired_token end the flow, others are OAuthErrors", () => {
    assert.deepStrictEqual(run(pollOutcome(400, { error: "authorization_pending" })), Exit.succeed({ _tag: "Pending" } as const))
    assert.deepStrictEqual(run(pollOutcome(400, { error: "slow_down" })), Exit.succeed({ _tag: "SlowDown" } as const))
    const tagOf = (error: string) => {
      const exit = run(Effect.flip(pollOutcome(400, { error })))
      return Exit.isSuccess(exit) ? exit.value._tag : "none"
    }
    assert.strictEqual(tagOf("access_denied"), "AccessDeniedError")
    assert.strictEqual(tagOf("expired_token"), "DeviceCodeExpiredError")
    assert.strictEqual(tagOf("invalid_request"), "OAuthError")
  })

  it("isGrantRejected: invalid_grant always, a 401 unless it blames the client id", () => {
    assert.isTrue(isGrantRejected(400, "invalid_grant"))
    assert.isTrue(isGrantRejected(401, "invalid_token"))
    assert.isFalse(isGrantRejected(401, "invalid_client"))
    assert.isFalse(isGrantRejected(400, "invalid_request"))
  })

  it("refreshRefusal: a rejected grant says to log in again; other refusals say what to try", () => {
    const gone = refreshRefusal(400, { error: "invalid_grant", error_description: "refresh token revoked" })
    assert.strictEqual(gone._tag, "InvalidGrantError")
    assert.include(gone.message, "HTTP 400: refresh token revoked")
    assert.include(gone.message, "kimi-auth login")
    const client = refreshRefusal(401, { error: "invalid_client" })
    assert.strictEqual(client._tag, "OAuthError")
    assert.include(client.message, "remove any custom clientId setting")
    assert.include(oauthError(400, { error: "invalid_scope" }).message, "Try again; if it persists")
    assert.strictEqual(grantRejected(401, undefined).errorDescription, undefined)
  })
})
