/**
 * Every edge uses the account it is told to, else the active one: the
 * Effect configuration, the promise facade (`{ account }`, `accounts()`, a
 * login of another user that the client then follows), the AI SDK
 * (`createKimi({ account })`) and the OpenCode 1.18 plugin (each region's
 * provider on its region's active account, both at once, following a
 * switch). Real files in a temp folder, the emulator on loopback.
 */
import { generateText } from "ai"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { createKimi, type KimiProvider } from "../../src/ai-sdk/index.js"
import { resolve } from "../../src/config/KimiAuthConfig.js"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { encodeRegistry, type Registry } from "../../src/light/AccountRegistry.js"
import { regionPlugin } from "../../src/opencode/KimiPlugin.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { seedAccountLogin } from "../support/accounts.js"
import { makeTemp, rmTemp } from "../support/cli.js"

const USERS = [
  { userId: "u-ada", nickname: "Ada", email: "ada@example.com" },
  { userId: "u-bob", nickname: "Bob", email: "bob@example.com" },
  { userId: "u-gil", nickname: "Gil", email: "gil@example.ai", region: "global" as const },
  { userId: "u-cy", nickname: "Cy", email: "cy@example.com" }
]

let dir: string
let emu: KimiEmulator.StartedEmulator
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  dir = makeTemp("kimi-accounts-")
  fs.chmodSync(dir, 0o700)
  emu = await KimiEmulator.start({ interval: 1, users: USERS })
})
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c().catch(() => {})
  await emu.close()
  rmTemp(dir)
})

const hosts = () => ({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })

const seedLogin = (file: string, userId: string, region: "mainland-cn" | "global") => seedAccountLogin(emu, dir, file, userId, region)

/** Ada (default, mainland-cn), Bob (mainland-cn, active there) and Gil (global); the registry as logins leave it. */
const seedThree = (active: Registry["active"] = { "mainland-cn": "oauth.mainland-cn.u-bob.json", global: "oauth.global.u-gil.json" }) => {
  const tokens = {
    ada: seedLogin("oauth.json", "u-ada", "mainland-cn"),
    bob: seedLogin("oauth.mainland-cn.u-bob.json", "u-bob", "mainland-cn"),
    gil: seedLogin("oauth.global.u-gil.json", "u-gil", "global")
  }
  writeRegistry(active, "oauth.mainland-cn.u-bob.json")
  return tokens
}

const writeRegistry = (active: Registry["active"], current: string) =>
  fs.writeFileSync(path.join(dir, "accounts.json"), encodeRegistry({
    accounts: [
      { file: "oauth.json", userId: "u-ada", nickname: "Ada", email: "ada@example.com", region: "mainland-cn", addedAt: undefined },
      { file: "oauth.mainland-cn.u-bob.json", userId: "u-bob", nickname: "Bob", email: "bob@example.com", region: "mainland-cn", addedAt: undefined },
      { file: "oauth.global.u-gil.json", userId: "u-gil", nickname: "Gil", email: "gil@example.ai", region: "global", addedAt: undefined }
    ],
    active,
    current
  }), { mode: 0o600 })

const lastBearer = () => emu.requests("/coding/v1/chat/completions").at(-1)?.bearer

describe("Effect: the account in the configuration", () => {
  it("decides the token file: named, the region's active one, or the current one", () => {
    seedThree()
    const file = (options: Parameters<typeof resolve>[0]) => path.basename(Effect.runSync(resolve({ ...hosts(), ...options })).tokenFilePath)
    expect(file({})).toBe("oauth.mainland-cn.u-bob.json")
    expect(file({ account: "ada" })).toBe("oauth.json")
    expect(file({ region: "global" })).toBe("oauth.global.u-gil.json")
    expect(file({ region: "mainland-cn" })).toBe("oauth.mainland-cn.u-bob.json")
    expect(Effect.runSync(resolve({ ...hosts(), account: "gil" })).region).toBe("global")
    expect(Effect.runSync(Effect.flip(resolve({ ...hosts(), account: "zed" }))).message).toMatch(/No Kimi account matches "zed"/)
    expect(Effect.runSync(Effect.flip(resolve({ ...hosts(), account: "ada", tokenFilePath: path.join(dir, "x.json") }))).message)
      .toMatch(/either an account .* or a token file path/)
  })
})

describe("the promise facade", () => {
  it("{ account } uses that account; accounts() lists them with the active ones", async () => {
    const tokens = seedThree()
    const ada = new KimiOAuthClient({ ...hosts(), account: "ada@example.com" })
    const plain = new KimiOAuthClient(hosts())
    cleanups.push(() => ada.dispose(), () => plain.dispose())
    expect(await ada.getValidAccessToken()).toBe(tokens.ada)
    expect(await plain.getValidAccessToken()).toBe(tokens.bob)
    const list = await plain.accounts()
    expect(list.map((a) => [a.label, a.active, a.current, a.isDefault, a.state])).toEqual([
      ["Ada (ada@example.com), mainland-cn", false, false, true, "valid"],
      ["Bob (bob@example.com), mainland-cn", true, true, false, "valid"],
      ["Gil (gil@example.ai), global", true, false, false, "valid"]
    ])
    const unknown = new KimiOAuthClient({ ...hosts(), account: "zed" })
    cleanups.push(() => unknown.dispose())
    await expect(unknown.getValidAccessToken()).rejects.toMatchObject({ code: "CONFIG_ERROR" })
  })

  it("a login of another user adds an account, and the client naming none follows it", async () => {
    const tokens = seedThree()
    const client = new KimiOAuthClient(hosts())
    cleanups.push(() => client.dispose())
    expect(await client.getValidAccessToken()).toBe(tokens.bob)
    const session = await client.authorize()
    expect(emu.approve(session.userCode, "u-cy")).toBe(true)
    const result = await session.waitForCompletion()
    expect(result).toMatchObject({
      tokenFilePath: path.join(dir, "oauth.mainland-cn.u-cy.json"),
      replaced: false,
      account: { label: "Cy (cy@example.com), mainland-cn", active: true, userId: "u-cy" }
    })
    const cy = await client.getValidAccessToken()
    const me = await fetch(`${emu.apiBaseUrl}/me`, { headers: { authorization: `Bearer ${cy}` } })
    expect(((await me.json()) as { user_id: string }).user_id).toBe("u-cy")
    // Bob's family is untouched, beside it.
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.mainland-cn.u-bob.json"), "utf8")).access_token).toBe(tokens.bob)
    expect((await client.accounts()).map((a) => a.label)).toContain("Bob (bob@example.com), mainland-cn")
  })
})

describe("the AI SDK", () => {
  let kimi: KimiProvider | undefined
  afterEach(async () => {
    await kimi?.dispose()
    kimi = undefined
  })

  it("createKimi({ account }) sends that account's token; without one, the current account's", async () => {
    const tokens = seedThree()
    kimi = createKimi({ ...hosts(), account: "u-ada" })
    await generateText({ model: kimi("kimi-for-coding"), prompt: "ada", maxRetries: 0 })
    expect(lastBearer()).toBe(tokens.ada)
    await kimi.dispose()
    kimi = createKimi(hosts())
    await generateText({ model: kimi("kimi-for-coding"), prompt: "current", maxRetries: 0 })
    expect(lastBearer()).toBe(tokens.bob)
  })
})

describe("OpenCode 1.18: each region's provider on its region's active account", () => {
  const chat = (fetch: (i: RequestInfo | URL, init?: RequestInit) => Promise<Response>) =>
    fetch(`${emu.apiBaseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer kimi-oauth" },
      body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
    })

  it("serves both regions at once, and follows a switch", async () => {
    const tokens = seedThree()
    const cn = await regionPlugin("mainland-cn")({}, hosts())
    const global = await regionPlugin("global")({}, hosts())
    cleanups.push(() => cn.dispose(), () => global.dispose())
    const cnFetch = (await cn.auth.loader(async () => undefined)).fetch
    const globalFetch = (await global.auth.loader(async () => undefined)).fetch
    expect((await chat(cnFetch)).status).toBe(200)
    expect(lastBearer()).toBe(tokens.bob)
    expect((await chat(globalFetch)).status).toBe(200)
    expect(lastBearer()).toBe(tokens.gil)

    // `kimi-auth switch ada`: the mainland provider follows within its check interval; global stays on Gil.
    writeRegistry({ "mainland-cn": "oauth.json", global: "oauth.global.u-gil.json" }, "oauth.json")
    await new Promise((r) => setTimeout(r, 2100))
    expect((await chat(cnFetch)).status).toBe(200)
    expect(lastBearer()).toBe(tokens.ada)
    expect((await chat(globalFetch)).status).toBe(200)
    expect(lastBearer()).toBe(tokens.gil)
    expect(emu.stats().refreshes).toBe(0)
  })

  it("a device login of another user in OpenCode adds an account beside the first, and the provider follows it", async () => {
    const ada = seedLogin("oauth.json", "u-ada", "mainland-cn")
    const cn = await regionPlugin("mainland-cn")({}, hosts())
    cleanups.push(() => cn.dispose())
    const fetch = (await cn.auth.loader(async () => undefined)).fetch
    expect((await chat(fetch)).status).toBe(200)
    expect(lastBearer()).toBe(ada)
    const start = await cn.auth.methods[0].authorize()
    expect(emu.approve(emu.deviceCodes().at(-1)!.userCode, "u-cy")).toBe(true)
    const done = await start.callback()
    expect(done.type).toBe("success")
    expect(fs.existsSync(path.join(dir, "oauth.mainland-cn.u-cy.json"))).toBe(true)
    // Ada's family is kept as it was.
    expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).access_token).toBe(ada)
    expect((await chat(fetch)).status).toBe(200)
    expect(lastBearer()).toBe(done.access)
    const me = await globalThis.fetch(`${emu.apiBaseUrl}/me`, { headers: { authorization: `Bearer ${done.access}` } })
    expect(((await me.json()) as { user_id: string }).user_id).toBe("u-cy")
  })
})
