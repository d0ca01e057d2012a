/**
 * A login of the other region is said in every edge (issue 24's small
 * thing): before, `layerNode({ region: "global" })`, the facade and
 * `createKimi` with `region: "global"` silently served a mainland-cn login
 * (which kimi.ai refuses), while the plugin complained in the same case. Now
 * the core refuses it (`tokens/RegionGuard.ts`) with the advice as data, and
 * each region is named once: "kimi.com (mainland-cn)", never
 * "(kimi.com) (mainland-cn)". Without a `region` option the stored login is
 * served wherever it was issued, as before.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { createKimi } from "../../src/ai-sdk/index.js"
import { type KimiRegion } from "../../src/light/Region.js"
import { KimiAuthError, KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { layerNode } from "../../src/KimiAuth.js"
import { regionMismatch } from "../../src/opencode/PluginCoreDecisions.js"
import { otherRegionOf } from "../../src/tokens/RegionGuard.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { storageWithLogin, tokenSet } from "../support/tokens.js"

const dirs: Array<string> = []
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true })
})

/** A storage folder holding a valid (not due) login of `region`, or of none recorded. */
const loginOf = (region: KimiRegion | undefined): string => {
  const dir = storageWithLogin("kimi-region-", 800)
  dirs.push(dir)
  if (region !== undefined) {
    const file = path.join(dir, "oauth.json")
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), region }), { mode: 0o600 })
  }
  return dir
}

const accessToken = (options: Parameters<typeof layerNode>[0]) =>
  Effect.runPromise(
    Effect.flatMap(TokenManager, (m) => m.getAccessToken).pipe(Effect.provide(layerNode(options)), Effect.flip, Effect.option)
  )

describe("the region guard's decision", () => {
  it.each([
    ["no region asked", undefined, "mainland-cn", undefined],
    ["the same region", "global", "global", undefined],
    ["a login with no region recorded", "global", undefined, undefined],
    ["the other region", "global", "mainland-cn", "mainland-cn"],
    ["the other region, the other way", "mainland-cn", "global", "global"]
  ] as const)("%s", (_, wanted, stored, refused) => {
    expect(otherRegionOf(wanted, new TokenSet({ ...tokenSet(0, 2e9), region: stored }))).toBe(refused)
  })
})

describe("a login of the other region, in every edge", () => {
  it("the Effect API: layerNode({ region: 'global' }) refuses a mainland-cn login with its advice as data", async () => {
    const failure = await accessToken({ storageDir: loginOf("mainland-cn"), region: "global" })
    expect(failure._tag).toBe("Some")
    const e = failure._tag === "Some" ? failure.value : undefined
    expect(e).toMatchObject({ _tag: "NotLoggedInError", reason: "other-region", loginRegion: "mainland-cn", region: "global", hint: { _tag: "LogIn", region: "global" } })
    expect(e?.message).toContain("Kimi login is for the other region: you are logged in at kimi.com (mainland-cn)")
    expect(e?.message).toContain("kimi.ai (global)")
    expect(e?.message).toContain("`kimi-auth login --region global`")
    expect(e?.message).not.toMatch(/\) \(/)
  })

  it("the Effect API: served without a region option, with its own region, and when the login records none", async () => {
    expect((await accessToken({ storageDir: loginOf("mainland-cn") }))._tag).toBe("None")
    expect((await accessToken({ storageDir: loginOf("global"), region: "global" }))._tag).toBe("None")
    expect((await accessToken({ storageDir: loginOf(undefined), region: "global" }))._tag).toBe("None")
  })

  it("the facade: NOT_LOGGED_IN, saying so", async () => {
    const client = new KimiOAuthClient({ storageDir: loginOf("global"), region: "mainland-cn" })
    try {
      const e = await client.getValidAccessToken().catch((x: unknown) => x)
      expect(e).toBeInstanceOf(KimiAuthError)
      expect((e as KimiAuthError).code).toBe("NOT_LOGGED_IN")
      expect((e as KimiAuthError).message).toContain("you are logged in at kimi.ai (global), but the region option is kimi.com (mainland-cn)")
    } finally {
      await client.dispose()
    }
  })

  it("the AI SDK: a 401 saying so, and the token is never sent", async () => {
    const sent: Array<string> = []
    const kimi = createKimi({
      storageDir: loginOf("mainland-cn"),
      region: "global",
      fetch: (async (input: RequestInfo | URL) => (sent.push(String(input)), new Response("{}"))) as typeof fetch
    })
    try {
      const { generateText } = await import("ai")
      const e = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi", maxRetries: 0 }).catch((x: unknown) => x)
      expect(String((e as Error).message)).toContain("Kimi login is for the other region")
      expect(sent).toEqual([])
    } finally {
      await kimi.dispose()
    }
  })

  it("the plugin: each region named once, and OpenCode's own command", () => {
    const message = regionMismatch("mainland-cn", "kimi-code-plan-global", "global")
    expect(message).toBe(
      "Kimi login is for the other region: you are logged in at kimi.com (mainland-cn), but kimi-code-plan-global is " +
        "kimi.ai (global), which would refuse that token. To use kimi-code-plan-global, run " +
        "`opencode auth login -p kimi-code-plan-global` (or `kimi-auth login --region global`); or pick kimi-code-plan-cn's models."
    )
  })
})

describe("the facade's errors carry the hint as data", () => {
  it("KimiAuthError.hint is the typed error's: a login at the region asked for", async () => {
    const client = new KimiOAuthClient({ storageDir: loginOf("mainland-cn"), region: "global" })
    try {
      const e = (await client.getValidAccessToken().catch((x: unknown) => x)) as KimiAuthError
      expect(e.hint).toEqual({ _tag: "LogIn", region: "global" })
      expect(new KimiAuthError("ABORTED", "The operation was cancelled.").hint).toBeUndefined()
    } finally {
      await client.dispose()
    }
  })
})
