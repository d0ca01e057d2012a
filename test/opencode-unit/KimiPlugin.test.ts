/**
 * The plugin's hooks in process, against the emulator: what the config hook
 * adds to OpenCode's catalog providers, the provider.models hook, the fetch
 * (thinking, region, host faults), bad config, and the types OpenCode's own
 * package declares (`Plugin`, `PluginModule`), checked by `npm run typecheck`.
 */
import type { Hooks, Plugin, PluginModule } from "@opencode-ai/plugin"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import { ACCOUNT_ONLY_MODEL_ID } from "../../src/emulator/Models.js"
import { KimiAuthPlugin, pluginModule, regionPlugin } from "../../src/opencode/KimiPlugin.js"
import * as server from "../../src/opencode/server.js"
import { makeTemp, rmTemp } from "../support/cli.js"

// The types OpenCode 1.18.33 publishes accept ours (a compile error here fails `npm run typecheck`).
const asPlugin: Plugin = KimiAuthPlugin
const asModule: PluginModule = pluginModule
const asModules: ReadonlyArray<PluginModule> = [server.kimiCodePlanCn, server.kimiCodePlanGlobal]
const asHooks = async (): Promise<Hooks> => KimiAuthPlugin({})
void [asPlugin, asModule, asModules, asHooks]

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

const seed = (extra: Record<string, unknown> = {}) => {
  const issued = emulator.issueTokens()
  fs.writeFileSync(
    path.join(dir, "oauth.json"),
    JSON.stringify({
      access_token: issued.accessToken,
      refresh_token: issued.refreshToken,
      expires_in: 900,
      expires_at: Math.floor(Date.now() / 1000) + 800,
      ...extra
    }),
    { mode: 0o600 }
  )
  return issued
}

const plugin = async (client: unknown, options: Record<string, unknown> = {}) => {
  const hooks = await KimiAuthPlugin(client as never, { storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl, ...options })
  disposers.push(hooks.dispose)
  return hooks
}

const chat = (f: typeof fetch, base: string | undefined, extra: Record<string, unknown> = {}, auth = "Bearer kimi-oauth") =>
  f(`${base}/chat/completions`, {
    method: "POST",
    headers: { authorization: auth, "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }], ...extra })
  })

describe("KimiAuthPlugin", () => {
  it("the OpenCode entry serves both catalog providers, one instance each, with the device login and the API key", async () => {
    const cn = await server.kimiCodePlanCn.server({}, { storageDir: dir })
    const global = await server.kimiCodePlanGlobal.server({}, { storageDir: dir })
    disposers.push(cn.dispose, global.dispose)
    expect([cn.auth.provider, global.auth.provider]).toEqual(["kimi-code-plan-cn", "kimi-code-plan-global"])
    for (const h of [cn, global]) {
      expect(h.auth.methods.map((m) => [m.type, m.label])).toEqual([["oauth", "Kimi device login"], ["api", "Kimi API key"]])
      expect(h.provider.id).toBe(h.auth.provider)
    }
    expect(Object.keys(server)).toEqual(["kimiCodePlanCn", "kimiCodePlanGlobal"]) // OpenCode calls every export
    expect((await KimiAuthPlugin({}, { provider: "kimi-code-plan-global" })).auth.provider).toBe("kimi-code-plan-global")
  })

  it("config: with a login on disk, the catalog provider gets the fetch and the off variant; the user's own options win", async () => {
    seed()
    const hooks = await plugin({})
    const config: { provider?: Record<string, any> } = {}
    await hooks.config(config)
    const block = config.provider!["kimi-code-plan-cn"]
    expect(Object.keys(block).sort()).toEqual(["models", "options"]) // no npm, no name: the catalog's stand
    expect(typeof block.options.fetch).toBe("function")
    expect(block.options.baseURL).toBe(emulator.apiBaseUrl) // pinned by the option
    expect(block.models["kimi-for-coding"]).toEqual({ variants: { off: { thinking: { type: "disabled" } } } })
    expect(block.models["k3"].variants.off).toEqual({ thinking: { type: "disabled" } })

    const mine = { provider: { "kimi-code-plan-cn": { options: { baseURL: "https://proxy.example", fetch: "theirs" }, models: { k3: { variants: { off: { x: 1 } } } } } } }
    await hooks.config(mine)
    const merged = mine.provider["kimi-code-plan-cn"] as Record<string, any>
    expect(merged.options).toEqual({ baseURL: "https://proxy.example", fetch: "theirs" })
    expect(merged.models.k3.variants.off).toEqual({ x: 1 })
  })

  it("config: without a login on disk it adds nothing, and never loads the runtime to find out", async () => {
    const hooks = await plugin({})
    const config: { provider?: Record<string, unknown> } = {}
    const before = emulator.requests().length
    await hooks.config(config)
    expect(config.provider).toBeUndefined()
    expect(emulator.requests().length).toBe(before)
  })

  it("provider.models: the catalog's models stay, the account's others are added in the catalog's shape", async () => {
    seed()
    const hooks = await plugin({})
    const template = {
      id: "kimi-for-coding",
      name: "kimi-for-coding",
      api: { id: "kimi-for-coding", url: "https://api.kimi.com/coding/v1", npm: "@ai-sdk/openai-compatible" },
      limit: { context: 1048576, output: 32768 },
      capabilities: { reasoning: true, attachment: true, input: { text: true, image: true } },
      variants: { low: { reasoningEffort: "low" } }
    }
    const catalog = { "kimi-for-coding": template, k3: { ...template, id: "k3" } }
    const out = await hooks.provider.models({ models: catalog }, { auth: undefined })
    expect(emulator.requests("/coding/v1/models").at(-1)!.status).toBe(200)
    // the emulator lists these too: the catalog's entries stay as they are, named as the account names
    // them where the catalog gives only the id ("kimi-for-coding" in the TUI otherwise)
    expect(out["kimi-for-coding"]).toEqual({ ...template, name: "Kimi For Coding" })
    expect(out["k3"]).toBe(catalog.k3)
    // the account's others are added, shaped like the catalog's, with their own id, name, context and capabilities
    expect(Object.keys(out)).toEqual(["kimi-for-coding", "k3", "kimi-for-coding-highspeed", "k3-256k", ACCOUNT_ONLY_MODEL_ID])
    expect(out[ACCOUNT_ONLY_MODEL_ID]).toMatchObject({
      id: ACCOUNT_ONLY_MODEL_ID,
      name: "Kimi K2 Thinking (emulator, account only)",
      api: { id: ACCOUNT_ONLY_MODEL_ID, url: template.api.url, npm: template.api.npm },
      limit: { context: 262_144, output: 32768 },
      capabilities: { reasoning: true, attachment: false, input: { text: true, image: false } },
      variants: {}
    })
  })

  it("provider.models: OpenCode 1.18.33's default pick is a catalog model, never an account-only one; no login still names kimi-for-coding", async () => {
    // OpenCode 1.18.33's Provider.sort (read from its binary): priority ids ("gpt-5", …) first, then ids
    // holding "latest", then by id, descending; the TUI starts on the first when no model is set or recent.
    const priority = ["gpt-5", "claude-sonnet-4", "big-pickle", "gemini-3-pro"]
    const openCodeDefault = (models: Record<string, unknown>) =>
      Object.keys(models).sort((a, b) =>
        priority.findIndex((p) => b.includes(p)) - priority.findIndex((p) => a.includes(p)) ||
        (a.includes("latest") ? 0 : 1) - (b.includes("latest") ? 0 : 1) ||
        (a < b ? 1 : a > b ? -1 : 0)
      )[0]
    const model = (id: string, name: string) => ({ id, name, api: { id }, capabilities: { reasoning: true, input: {} } })
    const catalog = {
      "kimi-for-coding-highspeed": model("kimi-for-coding-highspeed", "Kimi For Coding HighSpeed"),
      "kimi-for-coding": model("kimi-for-coding", "kimi-for-coding"),
      "k3-256k": model("k3-256k", "Kimi K3-256K"),
      k3: model("k3", "Kimi K3")
    }
    const loggedOut = await (await plugin({})).provider.models({ models: catalog }, { auth: undefined })
    expect((loggedOut["kimi-for-coding"] as { name: string }).name).toBe("Kimi For Coding")
    seed()
    const out = await (await plugin({})).provider.models({ models: catalog }, { auth: undefined })
    expect(Object.keys(out)).toContain(ACCOUNT_ONLY_MODEL_ID)
    expect(Object.keys(catalog)).toContain(openCodeDefault(out))
  })

  it("fetch: each thinking variant reaches Kimi as thinking { type, effort }, never as reasoning_effort", async () => {
    seed()
    const hooks = await plugin({})
    const options = await hooks.auth.loader(async () => undefined)
    const sent = async (extra: Record<string, unknown>) => {
      expect((await chat(options.fetch, options.baseURL, extra)).status).toBe(200)
      return emulator.requests("/coding/v1/chat/completions").at(-1)!.json as Record<string, unknown>
    }
    for (const effort of ["low", "high", "max"]) {
      const body = await sent({ reasoning_effort: effort })
      expect(body["thinking"]).toEqual({ type: "enabled", effort })
      expect(body).not.toHaveProperty("reasoning_effort")
    }
    expect((await sent({ thinking: { type: "disabled" } }))["thinking"]).toEqual({ type: "disabled" })
    expect((await sent({}))["thinking"]).toEqual({ type: "enabled" }) // a catalog model that thinks, no variant chosen
  })

  it("a login from the other region gets a message naming the right login, and its token is never sent", async () => {
    const issued = seed({ region: "mainland-cn" })
    const hooks = await plugin({}, { provider: "kimi-code-plan-global" })
    const options = await hooks.auth.loader(async () => undefined)
    const before = emulator.requests("/coding/v1/chat/completions").length
    const res = await chat(options.fetch, options.baseURL)
    expect(res.status).toBe(401)
    const message = (await res.json()).error.message as string
    expect(message).toMatch(/other region/)
    expect(message).toContain("opencode auth login -p kimi-code-plan-global")
    expect(message).not.toContain(issued.accessToken)
    expect(emulator.requests("/coding/v1/chat/completions").length).toBe(before)
  })

  it("not logged in: the message names `opencode auth login -p <provider>` first", async () => {
    const hooks = await plugin({}, { provider: "kimi-code-plan-global" })
    const options = await hooks.auth.loader(async () => undefined)
    const res = await chat(options.fetch, options.baseURL)
    expect(res.status).toBe(401)
    const message = (await res.json()).error.message as string
    expect(message).toMatch(/Kimi login required/)
    const opencode = message.indexOf("opencode auth login -p kimi-code-plan-global")
    expect(opencode).toBeGreaterThanOrEqual(0)
    const cli = message.indexOf("kimi-auth login")
    expect(cli === -1 || cli > opencode).toBe(true)
    expect(message).not.toMatch(/-p kimi`/) // the old provider id is gone
    expect(message).toContain("kimi-auth login --region global")
  })

  it("a host whose auth.set throws synchronously does not break requests", async () => {
    const issued = seed()
    const hooks = await plugin({ client: { auth: { set: () => { throw new Error("host exploded") } } } })
    const options = await hooks.auth.loader(async () => undefined)
    const res = await chat(options.fetch, options.baseURL)
    expect(res.status).toBe(200)
    expect(emulator.requests("/coding/v1/chat/completions").at(-1)!.bearer).toBe(issued.accessToken)
  })

  it("mirrors a refreshed login into OpenCode's store under the provider's id", async () => {
    seed()
    emulator.expireAccessTokens()
    const sets: Array<{ path: { id: string }; body: Record<string, unknown> }> = []
    const hooks = await regionPlugin("global")(
      { client: { auth: { set: async (a: (typeof sets)[number]) => void sets.push(a) } } } as never,
      { storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl }
    )
    disposers.push(hooks.dispose)
    const options = await hooks.auth.loader(async () => undefined)
    expect((await chat(options.fetch, options.baseURL)).status).toBe(200)
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8"))
    expect(sets.at(-1)).toEqual({
      path: { id: "kimi-code-plan-global" },
      body: { type: "oauth", refresh: stored.refresh_token, access: stored.access_token, expires: stored.expires_at * 1000 }
    })
  })

  it("a bad configuration never throws from server(): the hooks answer with the reason", async () => {
    const hooks = await plugin({}, { oauthHost: "http://auth.example.com" })
    const config: { provider?: Record<string, unknown> } = {}
    await hooks.config(config)
    expect(config.provider).toBeUndefined()
    const options = await hooks.auth.loader(async () => undefined)
    const res = await chat(options.fetch, "https://api.kimi.com/coding/v1")
    expect(res.status).toBe(500)
    expect((await res.json()).error.message).toMatch(/plain http/)
    await expect(hooks.auth.methods[0].authorize()).rejects.toThrow(/plain http/)
  })

  it("an empty or missing home never throws from server(): nothing is created and the hooks name HOME", async () => {
    const saved = process.env["HOME"]
    const cwd = process.cwd()
    for (const home of ["", "relative-home", path.join(dir, "no", "such", "home")]) {
      process.env["HOME"] = home
      process.chdir(dir)
      try {
        const hooks = await KimiAuthPlugin({} as never, { oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
        disposers.push(hooks.dispose)
        const config: { provider?: Record<string, unknown> } = {}
        await hooks.config(config)
        expect(config.provider).toBeUndefined()
        const options = await hooks.auth.loader(async () => undefined)
        const res = await chat(options.fetch, "https://api.kimi.com/coding/v1")
        expect(res.status).toBe(500)
        expect((await res.json()).error.message).toMatch(/HOME/)
        await expect(hooks.auth.methods[0].authorize()).rejects.toThrow(/OPENCODE_KIMI_AUTH_DIR/)
        expect(fs.readdirSync(dir)).toEqual([])
      } finally {
        process.chdir(cwd)
        if (saved === undefined) delete process.env["HOME"]
        else process.env["HOME"] = saved
      }
    }
  })
})
