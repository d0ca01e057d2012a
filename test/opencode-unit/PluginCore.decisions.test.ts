/** The plugin core's decisions, each tested directly as a table (src/opencode/PluginCoreDecisions.ts). */
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import {
  adoptLogLine,
  adoptRule,
  isAdoptableEntry,
  notAdoptedMessage,
  type OAuthEntry,
  supersededByMoved,
  tokenSetFromEntry,
  withAdoptionNote
} from "../../src/opencode/Adoption.js"
import {
  type FastToken,
  fastPathRule,
  isRefusalStatus,
  loginStartOf,
  loginSuccessOf,
  oauthEntryOf,
  QUOTA_ERROR_TYPE,
  quotaResponse,
  rejectedMessageFor,
  resendTokenRule,
  shouldMirror,
  stillStoredRule,
  withIdentityHeaders
} from "../../src/opencode/PluginCoreDecisions.js"
import { ERROR_HEADER } from "../../src/request/AuthorizingFetch.js"
import { PRESENCE_CHECK_MILLIS } from "../../src/tokens/TokenManagerDecisions.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"

const NOW = 1_800_000_000_000
const tokens = (expiresInFromNow: number, access = "acc", refresh = "ref") =>
  new TokenSet({
    accessToken: Redacted.make(access),
    refreshToken: Redacted.make(refresh),
    tokenType: "Bearer",
    expiresIn: 3600,
    scope: "",
    expiresAt: NOW / 1000 + expiresInFromNow
  })
const fast = (expiresInFromNow: number): FastToken => ({ tokens: tokens(expiresInFromNow), access: "acc" })

describe("fastPathRule", () => {
  const cases: Array<[string, FastToken | undefined, number, boolean, "serve" | "check" | "slow"]> = [
    ["no token remembered", undefined, NOW, false, "slow"],
    ["a cancelled request", fast(3600), NOW, true, "slow"],
    ["a due token (inside the refresh window)", fast(100), NOW, false, "slow"],
    ["an expired token", fast(-10), NOW, false, "slow"],
    ["a fresh token, presence checked just now", fast(3600), NOW - 1, false, "serve"],
    ["a fresh token, presence checked just under the interval ago", fast(3600), NOW - PRESENCE_CHECK_MILLIS + 1, false, "serve"],
    ["a fresh token, presence check as old as the interval", fast(3600), NOW - PRESENCE_CHECK_MILLIS, false, "check"],
    ["a fresh token, never checked", fast(3600), 0, false, "check"]
  ]
  for (const [name, f, checkedAt, aborted, want] of cases) {
    it(`${name}: ${want}`, () => expect(fastPathRule(f, NOW, 300, checkedAt, aborted)).toBe(want))
  }
})

describe("stillStoredRule", () => {
  const boom = () => {
    throw new Error("EACCES")
  }
  const cases: Array<[string, () => boolean, () => boolean, boolean]> = [
    ["token file present", () => true, boom, true],
    ["file gone, no logout marker for it", () => false, () => false, true],
    ["file gone and the logout marker names it", () => false, () => true, false],
    ["the stat throws", boom, () => true, true],
    ["the marker read throws", () => false, boom, true]
  ]
  for (const [name, exists, loggedOut, want] of cases) {
    it(`${name}: ${want}`, () => expect(stillStoredRule(exists, loggedOut)).toBe(want))
  }
  it("reads the logout marker only when the file is gone", () => {
    let reads = 0
    stillStoredRule(() => true, () => (reads++, true))
    expect(reads).toBe(0)
  })
})

describe("adopting OpenCode's stored copy", () => {
  const entry = (e: Partial<OAuthEntry>): OAuthEntry => ({ type: "oauth", refresh: "r", access: "a", expires: NOW, ...e })
  const entries: Array<[string, OAuthEntry, boolean]> = [
    ["refresh and access tokens", entry({}), true],
    ["an empty access token still carries a refresh token", entry({ access: "" }), true],
    ["an empty refresh token", entry({ refresh: "" }), false],
    ["no refresh token", entry({ refresh: undefined as unknown as string }), false],
    ["no access token", entry({ access: undefined as unknown as string }), false]
  ]
  for (const [name, e, want] of entries) it(`isAdoptableEntry, ${name}: ${want}`, () => expect(isAdoptableEntry(e)).toBe(want))

  const rules: Array<[boolean, boolean, string]> = [
    [true, false, "kept"],
    [true, true, "kept"],
    [false, true, "logged-out"],
    [false, false, "adopted"]
  ]
  for (const [stored, loggedOut, want] of rules) {
    it(`adoptRule, stored=${stored} loggedOut=${loggedOut}: ${want}`, () => expect(adoptRule(stored, () => loggedOut)).toBe(want))
  }
  it("adoptRule does not read the logout marker over a stored login", () => {
    expect(adoptRule(true, () => {
      throw new Error("must not be read")
    })).toBe("kept")
  })

  // A copy that may hold a spent refresh token is never adopted: refreshing it would be a replay (hunt case 8).
  const spentRules: Array<[string, boolean, boolean, "spent" | "unspent" | "unknown", boolean, string]> = [
    ["a stored login wins over everything", true, true, "spent", true, "kept"],
    ["a logout outweighs the spent list", false, true, "spent", true, "logged-out"],
    ["a listed refresh token", false, false, "spent", false, "spent"],
    ["an unreadable spent list fails closed", false, false, "unknown", false, "spent-unknown"],
    ["older than a moved-aside token file", false, false, "unspent", true, "superseded"],
    ["nothing says it is stale", false, false, "unspent", false, "adopted"]
  ]
  for (const [name, stored, loggedOut, spent, superseded, want] of spentRules) {
    it(`adoptRule, ${name}: ${want}`, () => expect(adoptRule(stored, () => loggedOut, () => spent, () => superseded)).toBe(want))
  }
  it("adoptRule reads each check only when the ones before it pass", () => {
    const never = () => {
      throw new Error("must not be read")
    }
    expect(adoptRule(false, () => true, never, never)).toBe("logged-out")
    expect(adoptRule(false, () => false, () => "spent", never)).toBe("spent")
  })

  const moved: Array<[string, number, number | undefined, boolean]> = [
    ["no token file moved aside", NOW - 60_000, undefined, false],
    ["the copy's access token expired before the moved file's last write", NOW - 60_000, NOW, true],
    ["expired exactly then", NOW, NOW, true],
    ["a copy newer than the moved file (a login made since)", NOW + 900_000, NOW, false]
  ]
  for (const [name, expires, movedAt, want] of moved) {
    it(`supersededByMoved, ${name}: ${want}`, () => expect(supersededByMoved(expires, movedAt)).toBe(want))
  }

  it("notAdoptedMessage says what happened and how to log in again, for each refusal of a stale copy only", () => {
    const hint = "run `opencode auth login -p p`"
    const paths = { tokenFilePath: "/s/oauth.json", movedAside: "/s/oauth.json.corrupt-x" }
    expect(notAdoptedMessage("spent", "p", hint, paths)).toMatch(/not used: its refresh token was already spent .*\/s\/oauth\.json\.spent.*revoking the whole login\. If you moved \/s\/oauth\.json away, put it back; otherwise log in again: run `opencode auth login -p p`\./)
    expect(notAdoptedMessage("spent-unknown", "p", hint, paths)).toMatch(/\/s\/oauth\.json\.spent, cannot be read.*Remove or fix that file, or log in again: run/)
    expect(notAdoptedMessage("superseded", "p", hint, paths)).toMatch(/older than the damaged token file moved aside to \/s\/oauth\.json\.corrupt-x.*Log in again: run/)
    for (const o of ["kept", "logged-out", "adopted"] as const) expect(notAdoptedMessage(o, "p", hint, paths)).toBeUndefined()
  })

  it("withAdoptionNote adds the note to a login-required failure only", () => {
    const required = { ok: false, status: 401, code: "kimi_login_required", message: "Kimi login required: none." } as const
    const other = { ok: false, status: 503, code: "kimi_auth_unavailable", message: "down" } as const
    expect(withAdoptionNote(required, "Why.").message).toBe("Kimi login required: none. Why.")
    expect(withAdoptionNote(required, undefined)).toBe(required)
    expect(withAdoptionNote(other, "Why.")).toBe(other)
  })

  it("tokenSetFromEntry keeps the tokens, the region and the expiry in seconds; its lifetime is never negative", () => {
    const t = tokenSetFromEntry(entry({ expires: NOW + 3_600_500 }), "global", NOW)
    expect([Redacted.value(t.accessToken), Redacted.value(t.refreshToken), t.tokenType, t.scope]).toEqual(["a", "r", "Bearer", ""])
    expect([t.expiresAt, t.expiresIn, t.region]).toEqual([NOW / 1000 + 3600, 3600, "global"])
    expect(tokenSetFromEntry(entry({ expires: NOW - 60_000 }), "mainland-cn", NOW).expiresIn).toBe(0)
  })

  it("adoptLogLine names each outcome, never a token", () => {
    expect(adoptLogLine("adopted", "kimi-code-plan-cn", "/s/t.json")).toBe("plugin: adopted OpenCode's stored login for kimi-code-plan-cn into /s/t.json")
    expect(adoptLogLine("logged-out", "p", "/s")).toMatch(/logged out of; not adopted/)
    expect(adoptLogLine("kept", "p", "/s")).toMatch(/already stored/)
    for (const o of ["spent", "spent-unknown", "superseded"] as const) expect(adoptLogLine(o, "p", "/s")).toMatch(/spent refresh token .*not adopted/)
  })
})

describe("mirroring into auth.json", () => {
  const cases: Array<[string, string, string | undefined, boolean, boolean]> = [
    ["a new token with a host client", "a2", "a1", true, true],
    ["the first token with a host client", "a1", undefined, true, true],
    ["the token already mirrored", "a1", "a1", true, false],
    ["no host client", "a2", "a1", false, false]
  ]
  for (const [name, access, mirrored, can, want] of cases) {
    it(`shouldMirror, ${name}: ${want}`, () => expect(shouldMirror(access, mirrored, can)).toBe(want))
  }
  it("oauthEntryOf writes OpenCode's shape, expiry in milliseconds", () => {
    expect(oauthEntryOf(tokens(3600, "A", "R"))).toEqual({ type: "oauth", refresh: "R", access: "A", expires: NOW + 3_600_000 })
  })
})

describe("refusal answers", () => {
  const statuses: Array<[number, boolean]> = [[403, true], [429, true], [200, false], [401, false], [500, false], [404, false]]
  for (const [status, want] of statuses) it(`isRefusalStatus(${status}): ${want}`, () => expect(isRefusalStatus(status)).toBe(want))

  it("quotaResponse is a 403 coded as quota, with the message", async () => {
    const r = quotaResponse("Kimi quota used up")
    expect(r.status).toBe(403)
    expect(r.headers.get(ERROR_HEADER)).toBe("kimi_quota_exceeded")
    expect(r.headers.get("content-type")).toBe("application/json")
    expect(await r.json()).toEqual({ error: { message: "Kimi quota used up", type: QUOTA_ERROR_TYPE, code: QUOTA_ERROR_TYPE } })
  })
})

describe("login start and callback mapping", () => {
  const auth = (e: { expiresIn: number; complete?: string }) => ({
    deviceCode: Redacted.make("dc"),
    userCode: "ABCD-1234",
    verificationUri: "https://kimi.example/device",
    ...(e.complete ? { verificationUriComplete: e.complete } : {}),
    expiresIn: e.expiresIn,
    interval: 5
  }) as unknown as Parameters<typeof loginStartOf>[0]
  const callback = async () => loginSuccessOf(tokens(3600))
  const cases: Array<[string, number, string | undefined, string, string]> = [
    ["the complete URI first", 600, "https://kimi.example/device?code=ABCD-1234", "https://kimi.example/device?code=ABCD-1234", "10 min"],
    ["the plain URI without a complete one", 900, undefined, "https://kimi.example/device", "15 min"],
    ["a lifetime under a minute reads as 1 min", 20, undefined, "https://kimi.example/device", "1 min"],
    ["minutes rounded", 150, undefined, "https://kimi.example/device", "3 min"]
  ]
  for (const [name, expiresIn, complete, url, minutes] of cases) {
    it(name, () => {
      const s = loginStartOf(auth(complete ? { expiresIn, complete } : { expiresIn }), NOW, callback)
      expect(s.url).toBe(url)
      expect(s.method).toBe("auto")
      expect(s.expiresAt).toBe(NOW + expiresIn * 1000)
      expect(s.instructions).toBe(`Enter code: ABCD-1234 (confirm it matches the page; it expires in ${minutes})`)
      expect(s.callback).toBe(callback)
    })
  }
  it("loginSuccessOf answers success with the tokens, expiry in milliseconds", () => {
    expect(loginSuccessOf(tokens(60, "A", "R"))).toEqual({ type: "success", refresh: "R", access: "A", expires: NOW + 60_000 })
  })
})

describe("withIdentityHeaders (what the api-key fetch adds)", () => {
  const identity = { "X-Msh-Platform": "kimi_cli", "User-Agent": "KimiCLI/1" }
  const cases: Array<[string, RequestInit | undefined, Record<string, string>]> = [
    ["no init", undefined, { "x-msh-platform": "kimi_cli", "user-agent": "KimiCLI/1" }],
    ["the request's own key kept", { headers: { authorization: "Bearer sk-x" } }, { authorization: "Bearer sk-x", "x-msh-platform": "kimi_cli", "user-agent": "KimiCLI/1" }],
    ["identity set over the request's own", { headers: { "user-agent": "ai-sdk" } }, { "x-msh-platform": "kimi_cli", "user-agent": "KimiCLI/1" }]
  ]
  const plain = (h: Headers) => {
    const out: Record<string, string> = {}
    h.forEach((v, k) => {
      out[k] = v
    })
    return out
  }
  for (const [name, init, want] of cases) {
    it(name, () => expect(plain(new Headers(withIdentityHeaders(init, identity).headers))).toEqual(want))
  }
  it("keeps the rest of the init and leaves it unchanged", () => {
    const init: RequestInit = { method: "POST", body: "{}", headers: { a: "1" } }
    const out = withIdentityHeaders(init, identity)
    expect([out.method, out.body]).toEqual(["POST", "{}"])
    expect(init.headers).toEqual({ a: "1" })
  })
})

describe("resendTokenRule and the rejected message", () => {
  const msg = rejectedMessageFor("run `opencode auth login -p kimi-code-plan-cn`")
  it("the message names the provider's login command", () => {
    expect(msg).toMatch(/^Kimi rejected the access token and no new one could be obtained/)
    expect(msg).toMatch(/log in again: run `opencode auth login -p kimi-code-plan-cn`\.$/)
  })
  const cases: Array<[string, Parameters<typeof resendTokenRule>[0], unknown]> = [
    ["a new token is sent", { ok: true, token: "new" }, { ok: true, token: "new" }],
    ["the rejected token again is refused", { ok: true, token: "old" }, { ok: false, status: 401, code: "invalid_authentication_error", message: msg }],
    ["a failure passes on", { ok: false, status: 503, code: "kimi_auth_unavailable", message: "m" }, { ok: false, status: 503, code: "kimi_auth_unavailable", message: "m" }]
  ]
  for (const [name, r, want] of cases) it(name, () => expect(resendTokenRule(r, "old", msg)).toEqual(want))
})
