/**
 * The OpenCode 2.1 row decisions as tables: which login a request carries
 * (`rowUse`), and which failed calls the host must not retry (`stopRetry`),
 * on the event shapes 2.1.2 produced (test/opencode/NOTES.md, "OpenCode 2.1").
 */
import { describe, expect, it } from "vitest"
import { accountMetadata, accountOfCredential, applyRetryDecision, labelOfCredential, noRowMessage, rowUse, rowWithoutLoginMessage, stopRetry } from "../../src/opencode/V2Rows.js"

describe("rowUse", () => {
  it.each([
    { active: { type: "credential", id: "cred_1", label: "Kimi alice", method: "oauth" }, rows: true, use: "package" },
    { active: { type: "credential", id: "cred_2", label: "API key", method: "key" }, rows: true, use: "own-key" },
    { active: { type: "env", name: "KIMI_API_KEY" }, rows: true, use: "own-key" },
    { active: undefined, rows: true, use: "none" },
    { active: null, rows: true, use: "none" },
    { active: undefined, rows: false, use: "package" },
    { active: { type: "env" }, rows: false, use: "package" }
  ])("$active with rows=$rows → $use", ({ active, rows, use }) => {
    expect(rowUse(active, rows)).toBe(use)
  })
})

describe("stopRetry", () => {
  const body = (type: string) => JSON.stringify({ error: { message: "m", type, code: type } })
  it.each([
    { what: "2.1: our quota answer (403 insufficient_quota)", event: { error: { type: "provider.quota", status: 403, response: { body: body("insufficient_quota") } }, attempt: 2, decision: { retry: true, delay: 1 } }, stop: true },
    { what: "2.1: Kimi's raw 429 quota answer", event: { error: { type: "provider.rate-limit", status: 429, response: { body: body("exceeded_current_quota_error") } }, attempt: 2, decision: { retry: true, delay: 1 } }, stop: true },
    { what: "2.1: a rate limit", event: { error: { type: "provider.rate-limit", message: "emulated 429", status: 429, response: { body: body("rate_limit_reached_error") } }, attempt: 2, decision: { retry: true, delay: 1 } }, stop: false },
    { what: "2.1: an auth failure", event: { error: { type: "provider.auth", status: 401 }, attempt: 2, decision: { retry: false } }, stop: true },
    { what: "2.1: our login-required answer", event: { error: { type: "provider.unknown", status: 401, response: { body: body("kimi_login_required") } }, attempt: 2, decision: { retry: true, delay: 1 } }, stop: true },
    { what: "2.1: a transport failure", event: { error: { type: "provider.transport", message: "ECONNREFUSED" }, attempt: 2, decision: { retry: true, delay: 1 } }, stop: false },
    { what: "2.0.x: `retry` and the error text", event: { error: "usage limit is used up", retry: true }, stop: true },
    { what: "nothing", event: undefined, stop: false }
  ])("$what → $stop", ({ event, stop }) => {
    expect(stopRetry(event)).toBe(stop)
  })

  it("applyRetryDecision writes 2.1's decision and the older fields", () => {
    const e: Record<string, unknown> = { error: { response: { body: body("insufficient_quota") } }, decision: { retry: true, delay: 5 }, retry: true, retryable: true }
    applyRetryDecision(e)
    expect(e).toMatchObject({ decision: { retry: false }, retry: false, retryable: false })
    const kept: Record<string, unknown> = { error: { type: "provider.rate-limit" }, decision: { retry: true, delay: 5 } }
    applyRetryDecision(kept)
    expect(kept["decision"]).toEqual({ retry: true, delay: 5 })
  })
})

describe("messages", () => {
  it("no row: names 2.1's login command and says the package's own login is not used", () => {
    const m = noRowMessage("kimi-code-plan-global", "global")
    expect(m).toContain("`opencode auth login kimi-code-plan-global --method kimi-device`")
    expect(m).toContain("kimi-auth login")
  })
  it("a row without a login here: says a rotating login cannot be copied, and how to log in on this machine", () => {
    const m = rowWithoutLoginMessage("kimi-code-plan-cn")
    expect(m).toContain("cannot be copied between machines")
    expect(m).toContain("`opencode auth login kimi-code-plan-cn --method kimi-device`")
  })
})

describe("rows as accounts", () => {
  it.each([
    { credential: { metadata: { account: "oauth.json", label: "Ada, mainland-cn" } }, file: "oauth.json" },
    { credential: { metadata: { account: "oauth.global.u1.json" } }, file: "oauth.global.u1.json" },
    { credential: { metadata: { account: "../oauth.json" } }, file: undefined },
    { credential: { metadata: { account: "/etc/passwd" } }, file: undefined },
    { credential: { metadata: {} }, file: undefined },
    { credential: { type: "oauth" }, file: undefined },
    { credential: undefined, file: undefined }
  ])("accountOfCredential($credential) → $file (a bare oauth….json name only)", ({ credential, file }) => {
    expect(accountOfCredential(credential)).toBe(file)
  })

  it.each([
    { credential: { metadata: { account: "oauth.json", label: "Ada (ada@example.com), mainland-cn" } }, label: "Kimi Ada (ada@example.com), mainland-cn" },
    { credential: { metadata: { label: " " } }, label: undefined },
    { credential: { metadata: { label: 3 } }, label: undefined },
    { credential: {}, label: undefined }
  ])("labelOfCredential → $label", ({ credential, label }) => {
    expect(labelOfCredential(credential)).toBe(label)
  })

  it("accountMetadata holds the account's file and label, nothing else", () => {
    expect(accountMetadata({ account: "oauth.json", label: "Ada, global" })).toEqual({ account: "oauth.json", label: "Ada, global" })
  })
})
