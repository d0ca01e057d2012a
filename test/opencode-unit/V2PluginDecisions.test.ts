/** The OpenCode 2 plugin's decisions, each tested directly as a table (src/opencode/V2PluginDecisions.ts). */
import { describe, expect, it } from "vitest"
import { credentialOf, errorResponse, isQuotaFailure, REFRESH_MARKER } from "../../src/opencode/V2PluginDecisions.js"

describe("V2Plugin's decisions", () => {
  it.each([
    ["no metadata", undefined, { type: "oauth", methodID: "kimi-device", access: "at", refresh: REFRESH_MARKER, expires: 5 }],
    ["metadata kept", { label: "x" }, { type: "oauth", methodID: "kimi-device", access: "at", refresh: REFRESH_MARKER, expires: 5, metadata: { label: "x" } }]
  ] as const)("credentialOf: %s, never a refresh token", (_, metadata, credential) => {
    expect(credentialOf("kimi-device", "at", 5, metadata)).toEqual(credential)
  })

  it("errorResponse: the status, the code twice and the header", async () => {
    const r = errorResponse(401, "kimi_login_required", "Kimi login required")
    expect(r.status).toBe(401)
    expect(r.headers.get("x-kimi-auth-error")).toBe("kimi_login_required")
    expect(await r.json()).toEqual({ error: { message: "Kimi login required", type: "kimi_login_required", code: "kimi_login_required" } })
  })

  it.each([
    ["our quota answer's code", { code: "insufficient_quota" }, true],
    ["our header's code", "kimi_quota_exceeded", true],
    ["Kimi's words", { message: "Your usage limit is used up until 12:00" }, true],
    ["a rate limit", { status: 429, message: "slow down" }, false],
    ["nothing", "", false]
  ] as const)("isQuotaFailure: %s", (_, failure, quota) => {
    expect(isQuotaFailure(failure)).toBe(quota)
  })
})
