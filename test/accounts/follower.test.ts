/** How OpenCode 1.18's provider follows its region's active account: at most every 2 s, only on a change of file. */
import { describe, expect, it } from "vitest"
import { accountFollower } from "../../src/opencode/KimiPlugin.js"

describe("accountFollower", () => {
  it("checks at most every 2 s, answers only a new file, and checks at once after soon()", () => {
    let t = 1000
    let file = "oauth.json"
    let calls = 0
    const f = accountFollower(() => (calls++, { ok: true as const, value: { tokenFilePath: file } }), { tokenFilePath: "oauth.json" }, () => t)
    expect(f.check()).toBeUndefined()
    expect(calls).toBe(0)
    t += 2000
    expect(f.check()).toBeUndefined()
    expect(calls).toBe(1)
    file = "oauth.mainland-cn.u-bob.json"
    t += 1999
    expect(f.check()).toBeUndefined()
    expect(calls).toBe(1)
    f.soon()
    expect(f.check()).toEqual({ tokenFilePath: "oauth.mainland-cn.u-bob.json" })
    t += 5000
    expect(f.check()).toBeUndefined()
  })
  it("an unusable configuration changes nothing", () => {
    let t = 0
    const f = accountFollower(() => ({ ok: false as const }), { tokenFilePath: "oauth.json" }, () => t)
    t = 10_000
    expect(f.check()).toBeUndefined()
  })
})
