/** The plugin's hooks in process, against the emulator: provider definition, fetch, host faults, bad config. */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import { KimiAuthPlugin } from "../../src/opencode/KimiPlugin.js"
import { makeTemp, rmTemp } from "../support/cli.js"

let emulator: StartedEmulator
let dir: string
const disposers: Array<() => Promise<void>> = []

beforeAll(async () => {
  emulator = await start({ interval: 1 })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  dir = makeTemp("kimi-plugin-")
})
afterEach(async () => {
  while (disposers.length) await disposers.pop()!()
  rmTemp(dir)
})

const seed = () => {
  const issued = emulator.issueTokens()
  fs.writeFileSync(
    path.join(dir, "oauth.json"),
    JSON.stringify({ access_token: issued.accessToken, refresh_token: issued.refreshToken, expires_in: 900, expires_at: Math.floor(Date.now() / 1000) + 800 }),
    { mode: 0o600 }
  )
  return issued
}

const plugin = async (client: unknown, options: Record<string, unknown> = {}) => {
  const hooks = await KimiAuthPlugin(client as never, { storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl, ...options })
  disposers.push(hooks.dispose)
  return hooks
}

const chat = (f: typeof fetch, base: string, auth = "Bearer kimi-oauth") =>
  f(`${base}/chat/completions`, {
    method: "POST",
    headers: { authorization: auth, "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
  })

describe("KimiAuthPlugin", () => {
  it("defines the provider with the account's models when logged in, and leaves a user's block alone", async () => {
    const issued = seed()
    const hooks = await plugin({})
    const config: { provider?: Record<string, any> } = {}
    await hooks.config(config)
    const asked = emulator.requests("/coding/v1/models").at(-1)!
    expect(asked.bearer).toBe(issued.accessToken)
    expect(asked.msh.platform).toBe("kimi_cli")
    expect(asked.status).toBe(200)
    expect(config.provider!["kimi"]).toMatchObject({ npm: "@ai-sdk/openai-compatible", options: { baseURL: emulator.apiBaseUrl } })
    expect(Object.keys(config.provider!["kimi"].models)).toContain("kimi-for-coding")
    expect(typeof config.provider!["kimi"].options.fetch).toBe("function")
    const mine = { provider: { kimi: { npm: "custom", options: { baseURL: "https://example.test" } } } }
    await hooks.config(mine)
    expect(mine.provider.kimi).toEqual({ npm: "custom", options: { baseURL: "https://example.test" } })
  })

  it("a host whose auth.set throws synchronously does not break requests", async () => {
    const issued = seed()
    const hooks = await plugin({ client: { auth: { set: () => { throw new Error("host exploded") } } } })
    const options = await hooks.auth.loader(async () => undefined)
    const res = await chat(options.fetch!, options.baseURL)
    expect(res.status).toBe(200)
    expect(emulator.requests("/coding/v1/chat/completions").at(-1)!.bearer).toBe(issued.accessToken)
  })

  it("mirrors a refreshed login into OpenCode's store", async () => {
    seed()
    emulator.expireAccessTokens()
    const sets: Array<{ path: { id: string }; body: Record<string, unknown> }> = []
    const hooks = await plugin({ client: { auth: { set: async (a: (typeof sets)[number]) => void sets.push(a) } } }, { provider: "kimi-custom" })
    const options = await hooks.auth.loader(async () => undefined)
    expect((await chat(options.fetch!, options.baseURL)).status).toBe(200)
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8"))
    expect(sets.at(-1)).toEqual({
      path: { id: "kimi-custom" },
      body: { type: "oauth", refresh: stored.refresh_token, access: stored.access_token, expires: stored.expires_at * 1000 }
    })
  })

  it("a bad configuration never throws from server(): the hooks answer with the reason", async () => {
    const hooks = await plugin({}, { oauthHost: "http://auth.example.com" })
    const config: { provider?: Record<string, unknown> } = {}
    await hooks.config(config)
    expect(config.provider).toBeUndefined()
    const options = await hooks.auth.loader(async () => undefined)
    const res = await chat(options.fetch!, options.baseURL)
    expect(res.status).toBe(500)
    expect((await res.json()).error.message).toMatch(/plain http/)
    await expect(hooks.auth.methods[0]!.authorize!()).rejects.toThrow(/plain http/)
  })
})
