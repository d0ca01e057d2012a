/** The light plugin's decisions, each tested directly as a table (src/opencode/KimiPluginDecisions.ts). */
import { describe, expect, it } from "vitest"
import { authorizationOf, carriesOwnKey, readsAccountModels, regionFrom, storedLoginOf } from "../../src/opencode/KimiPluginDecisions.js"

describe("KimiPlugin's decisions", () => {
  it.each([
    ["none", undefined, undefined],
    ["a plain object", { authorization: "Bearer k" }, "Bearer k"],
    ["a plain object, capitalised", { Authorization: "Bearer k" }, "Bearer k"],
    ["Headers", new Headers({ Authorization: "Bearer h" }), "Bearer h"],
    ["pairs", [["authorization", "Bearer p"]] as Array<[string, string]>, "Bearer p"],
    ["other headers only", { accept: "x" }, undefined]
  ] as const)("authorizationOf: %s", (_, headers, value) => {
    expect(authorizationOf(headers as RequestInit["headers"])).toBe(value)
  })

  it.each([
    ["no bearer", {}, false],
    ["the OAuth placeholder", { authorization: "Bearer kimi-oauth" }, false],
    ["an API key", { authorization: "Bearer sk-123" }, true]
  ] as const)("carriesOwnKey: %s", (_, headers, own) => {
    expect(carriesOwnKey(headers, "kimi-oauth")).toBe(own)
  })

  const file = (text: string) => ({ _tag: "Text", text }) as const
  const login = JSON.stringify({ access_token: "at", refresh_token: "rt", token_type: "Bearer", expires_in: 900, scope: "", expires_at: 2e9 })
  it.each([
    ["no file", { _tag: "Missing" } as const, { kind: "none" }],
    ["a login with no region", file(login), { kind: "login", region: undefined }],
    ["a global login", file(JSON.stringify({ ...JSON.parse(login), region: "global" })), { kind: "login", region: "global" }],
    ["a file it cannot parse: a login of no known region", file("{"), { kind: "login", region: undefined }],
    ["a FIFO at the path", { _tag: "NotAFile", kind: "a FIFO" } as const, { kind: "login", region: undefined }]
  ] as const)("storedLoginOf: %s", (_, found, stored) => {
    expect(storedLoginOf(found)).toEqual(stored)
  })

  it.each([
    ["no file, no OpenCode login", { kind: "none" }, false, false],
    ["no file, OpenCode holds an OAuth login", { kind: "none" }, true, true],
    ["this region's login", { kind: "login", region: "mainland-cn" }, false, true],
    ["a login of no recorded region", { kind: "login", region: undefined }, false, true],
    ["the other region's login", { kind: "login", region: "global" }, true, false]
  ] as const)("readsAccountModels: %s", (_, stored, oauth, reads) => {
    expect(readsAccountModels(stored, oauth, "mainland-cn")).toBe(reads)
  })

  it.each([
    ["nothing", {}, "mainland-cn"],
    ["the global provider", { provider: "kimi-code-plan-global" }, "global"],
    ["an unknown provider, a region", { provider: "kimi", region: "global" }, "global"],
    ["the provider beats the region", { provider: "kimi-code-plan-cn", region: "global" }, "mainland-cn"],
    ["a region that is not one", { region: "mars" }, "mainland-cn"]
  ] as const)("regionFrom: %s", (_, options, region) => {
    expect(regionFrom(options)).toBe(region)
  })
})
