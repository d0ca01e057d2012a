/**
 * The OpenCode 2 plugin's `setup` in process, against the emulator, with a
 * ctx shaped like the 2.0 preview's (the real hosts: test/opencode2/): what it
 * registers, that the credential it hands the host never holds the refresh
 * token, that `refresh` defers to the package's store, and the request hooks
 * (headers, thinking, the 401 heal, quota, the region message). Runs anywhere.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { ACCOUNT_ONLY_MODEL_ID, start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import serverV2 from "../../src/opencode/server-v2.js"
import { makeFastPath } from "../../src/opencode/V2Fast.js"
import { guarded, makeV2Handlers, type RegionV2, V2Refusal } from "../../src/opencode/V2Hooks.js"
import { REFRESH_MARKER, setupV2, type V2Credential, V2_METHOD_ID } from "../../src/opencode/V2Plugin.js"
import { makeTemp, rmTemp } from "../support/cli.js"

let emulator: StartedEmulator
let dir: string
const cleanups: Array<() => Promise<void>> = []

beforeAll(async () => {
  emulator = await start({ interval: 1, autoApproveAfterMillis: 200 })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  dir = makeTemp("kimi-v2-")
})
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
  rmTemp(dir)
})

const tokenFile = () => path.join(dir, "oauth.json")
const seed = (expiresAt: number, region?: string) => {
  const issued = emulator.issueTokens()
  fs.writeFileSync(tokenFile(), JSON.stringify({
    access_token: issued.accessToken,
    refresh_token: issued.refreshToken,
    expires_in: 900,
    expires_at: expiresAt,
    ...(region ? { region } : {})
  }), { mode: 0o600 })
  return issued
}
const now = () => Math.floor(Date.now() / 1000)

/** A ctx shaped like the 2.0 preview's, recording what setup registers. */
const setup = async (options: Record<string, unknown> = {}, omit: ReadonlyArray<string> = []) => {
  const methods: Array<any> = []
  const hooks: Record<string, Array<(e: any) => unknown>> = {}
  const draft = { method: { update: (m: any) => methods.push(m) }, model: { get: () => undefined, update: () => {} } }
  const ctx: any = {
    options: { storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl, ...options },
    integration: { transform: async (f: any) => (f(draft), { dispose: async () => {} }) },
    catalog: { transform: async (f: any) => (f(draft), { dispose: async () => {} }) },
    session: { hook: async (name: string, cb: any) => ((hooks[name] ??= []).push(cb), { dispose: async () => {} }) }
  }
  for (const k of omit) delete ctx[k]
  const cleanup = await setupV2(ctx)
  cleanups.push(async () => cleanup())
  return { methods, hooks }
}

const model = { id: "kimi-for-coding", providerID: "kimi-code-plan-cn" }
const chat = (body: Record<string, unknown>) =>
  new Request(`${emulator.apiBaseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer row-access" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }], ...body })
  })
/** What the host does around a model call: http.request, the send, http.response. */
const send = async (hooks: Record<string, Array<(e: any) => unknown>>, request: Request) => {
  const before = { model, request }
  for (const h of hooks["http.request"] ?? []) await h(before)
  const after = { model, request: before.request, response: await fetch(before.request.clone()) }
  for (const h of hooks["http.response"] ?? []) await h(after)
  return after.response
}

describe("OpenCode 2 plugin (setup)", () => {
  it("the package's V2 entry is a default { id, setup } (and keeps the V1 server)", () => {
    expect(serverV2.id).toBe("opencode-kimi-auth")
    expect(typeof serverV2.setup).toBe("function")
    expect(typeof serverV2.server).toBe("function")
  })

  it("registers the device login on both Kimi providers, and the hooks", async () => {
    const { methods, hooks } = await setup()
    expect(methods.map((m) => m.integrationID)).toEqual(["kimi-code-plan-cn", "kimi-code-plan-global"])
    for (const m of methods) expect(m.method).toEqual({ id: V2_METHOD_ID, type: "oauth", label: "Kimi device login" })
    expect(Object.keys(hooks).sort()).toEqual(["http.request", "http.response", "model.request", "retry"])
  })

  it("authorize: mode auto with the code's expiry; the credential holds the marker, never the refresh token", async () => {
    const { methods } = await setup()
    const a = await methods[0].authorize({})
    expect(a.mode).toBe("auto")
    expect(a.url).toContain(emulator.url)
    expect(a.expiresAt).toBeGreaterThan(Date.now() + 800_000)
    const credential: V2Credential = await a.callback
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    expect(credential).toEqual({
      type: "oauth", methodID: V2_METHOD_ID, access: stored.access_token, refresh: REFRESH_MARKER, expires: stored.expires_at * 1000,
      // the row names its account (the token file, never a secret) and its label (OpenCode 2.1 rows = accounts)
      metadata: { account: "oauth.json", label: expect.stringContaining("mainland-cn") }
    })
    expect(JSON.stringify(credential)).not.toContain(stored.refresh_token)
  })

  it("refresh never spends the row's copy: it asks the package's store, which refreshes once under its lock", async () => {
    const issued = seed(now() - 10)
    const { methods } = await setup()
    const before = emulator.stats().refreshes
    // The host hands back what it stored (a marker), or a stolen live token: neither is sent anywhere.
    const stale: V2Credential = { type: "oauth", methodID: V2_METHOD_ID, access: "old", refresh: issued.refreshToken, expires: 0 }
    const [a, b] = await Promise.all([methods[0].refresh(stale), methods[0].refresh({ ...stale, refresh: REFRESH_MARKER })])
    expect(emulator.stats().refreshes - before).toBe(1)
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    for (const c of [a, b]) expect(c).toMatchObject({ access: stored.access_token, refresh: REFRESH_MARKER, expires: stored.expires_at * 1000 })
    expect(emulator.stats().spentTokenReplays).toBe(0)
  })

  it("refresh with no login (logged out, or an imported row) throws a message naming OpenCode 2.1's login, and that a rotating login cannot be copied", async () => {
    const { methods } = await setup()
    const refused = methods[0].refresh({ type: "oauth", methodID: V2_METHOD_ID, access: "x", refresh: REFRESH_MARKER, expires: 0 })
    await expect(refused).rejects.toThrow(/run `opencode auth login kimi-code-plan-cn --method kimi-device`/)
    await expect(refused).rejects.toThrow(/cannot be copied between machines/)
    await expect(refused).rejects.not.toThrow(/opencode auth login -p/)
  })

  it("http.request: our bearer, the X-Msh headers, thinking in Kimi's form", async () => {
    const issued = seed(now() + 800)
    const { hooks } = await setup()
    emulator.clearRequests()
    const r = await send(hooks, chat({ reasoning_effort: "high" }))
    expect(r.status).toBe(200)
    const [c] = emulator.requests("/coding/v1/chat/completions")
    expect(c!.bearer).toBe(issued.accessToken)
    expect(c!.msh.platform).toBe("kimi_cli")
    expect(c!.msh.deviceId).toMatch(/^[0-9a-f-]{36}$/)
    expect((c!.json as any).thinking).toEqual({ type: "enabled", effort: "high" })
    expect(c!.json).not.toHaveProperty("reasoning_effort")
  })

  it("http.response: a 401 is healed by one refresh and one resend with the new token", async () => {
    const issued = seed(now() + 800)
    const { hooks } = await setup()
    emulator.expireAccessTokens()
    emulator.clearRequests()
    const before = emulator.stats().refreshes
    const r = await send(hooks, chat({}))
    expect(r.status).toBe(200)
    expect(emulator.stats().refreshes - before).toBe(1)
    const chats = emulator.requests("/coding/v1/chat/completions")
    expect(chats.map((c) => c.status)).toEqual([401, 200])
    expect(chats[1]!.bearer).not.toBe(issued.accessToken)
  })

  it("http.response: a used-up quota becomes a non-retried quota answer naming its reset", async () => {
    seed(now() + 800)
    const { hooks } = await setup()
    emulator.exhaustQuota()
    try {
      const r = await send(hooks, chat({}))
      expect(r.status).toBe(403)
      const body = await r.json()
      expect(body.error.type).toBe("insufficient_quota")
      expect(body.error.message).toMatch(/usage limit is used up.*resets/)
    } finally {
      emulator.resetQuota()
    }
  })

  it("a login at the other region: the answer says so, and the token is not sent", async () => {
    const issued = seed(now() + 800, "global")
    const { hooks } = await setup()
    emulator.clearRequests()
    const r = await send(hooks, chat({}))
    expect(r.status).toBe(401)
    expect((await r.json()).error.message).toContain("Kimi login is for the other region")
    for (const c of emulator.requests("/coding/v1/chat/completions")) expect(c.bearer).not.toBe(issued.accessToken)
  })

  it("model.request (2.0.x): sets the bearer and identity headers on the mutable headers", async () => {
    const issued = seed(now() + 800)
    const { hooks } = await setup()
    const event = { model, headers: { Authorization: "Bearer row-access", "x-other": "1" } as Record<string, string> }
    await hooks["model.request"]![0]!(event)
    expect(event.headers["authorization"]).toBe(`Bearer ${issued.accessToken}`)
    expect(event.headers).not.toHaveProperty("Authorization")
    expect(event.headers["X-Msh-Platform"] ?? event.headers["x-msh-platform"]).toBe("kimi_cli")
    expect(event.headers["x-other"]).toBe("1")
  })

  it("another provider's calls are left alone", async () => {
    seed(now() + 800)
    const { hooks } = await setup()
    const request = chat({})
    const event = { model: { id: "gpt", providerID: "openai" }, request }
    await hooks["http.request"]![0]!(event)
    expect(event.request).toBe(request)
  })

  it("a host without session hooks or catalog: setup still registers the login and does not throw", async () => {
    const { methods, hooks } = await setup({}, ["session", "catalog"])
    expect(methods).toHaveLength(2)
    expect(hooks).toEqual({})
  })
})

/** A ctx shaped like OpenCode 2.1.2's (test/opencode/NOTES.md, "OpenCode 2.1"): rows, model.transform, no catalog. */
const setup21 = async (active: unknown = { type: "credential", id: "cred_1", label: "Kimi", method: "oauth" }) => {
  const methods: Array<any> = []
  const hooks: Record<string, Array<(e: any) => unknown>> = {}
  const models = new Map<string, any>([["kimi-code-plan-cn/kimi-for-coding", {
    id: "kimi-for-coding", modelID: "kimi-for-coding", providerID: "kimi-code-plan-cn", name: "Kimi For Coding",
    limit: { context: 262144, output: 32768 }, variants: [{ id: "high", settings: { reasoningEffort: "high" } }]
  }]])
  const modelDraft = {
    get: (p: string, m: string) => models.get(`${p}/${m}`),
    update: (p: string, m: string, f: (x: any) => void) => {
      const x = models.get(`${p}/${m}`) ?? { id: m, modelID: m, providerID: p, variants: [] }
      f(x)
      models.set(`${p}/${m}`, x)
    }
  }
  const disposed: Array<string> = []
  const reg = (name: string) => ({ dispose: async () => void disposed.push(name) })
  let reloads = 0
  const transforms: Array<(d: any) => void> = []
  const ctx: any = {
    options: { storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl },
    integration: {
      transform: async (f: any) => (f({ method: { update: (m: any) => methods.push(m) } }), reg("integration")),
      connection: { active: async () => active }
    },
    model: {
      transform: async (f: any) => (transforms.push(f), f(modelDraft), reg("model")),
      reload: async () => {
        reloads++
        for (const f of transforms) f(modelDraft)
      }
    },
    // As 2.1.2's PluginHooks: a registration with `{ providerID }` fires only for events of that provider's model.
    session: {
      hook: async (name: string, cb: any, options?: { providerID?: string }) => {
        registered.push([name, options?.providerID])
        ;(hooks[name] ??= []).push((e: any) => options?.providerID === undefined || options.providerID === e?.model?.providerID ? cb(e) : undefined)
        return reg(name)
      }
    }
  }
  const registered: Array<[string, string | undefined]> = []
  const cleanup = await setupV2(ctx)
  cleanups.push(async () => cleanup())
  return { methods, hooks, registered, models, disposed, cleanup, reloads: () => reloads }
}

describe("OpenCode 2.1 plugin (setup, a ctx shaped like 2.1.2's)", () => {
  it("model.transform: the `off` variant on kimi-for-coding (2.1 has no ctx.catalog)", async () => {
    const { models } = await setup21()
    expect(models.get("kimi-code-plan-cn/kimi-for-coding").variants.map((v: any) => v.id)).toEqual(["high", "off"])
    expect(models.get("kimi-code-plan-cn/kimi-for-coding").variants[1]).toEqual({ id: "off", body: { thinking: { type: "disabled" } } })
  })

  it("model.transform: the account's models, from the cache a request refreshed, without the core at setup", async () => {
    seed(now() + 800)
    const first = await setup21()
    expect(first.models.has(`kimi-code-plan-cn/${ACCOUNT_ONLY_MODEL_ID}`)).toBe(false)
    // a request goes through: the stale (missing) cache is read again from Kimi in the background, then the host reloads
    const r = await send(first.hooks, chat({}))
    expect(r.status).toBe(200)
    for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, "models-kimi-code-plan-cn.json")); i++) await new Promise((res) => setTimeout(res, 20))
    for (let i = 0; i < 100 && first.reloads() === 0; i++) await new Promise((res) => setTimeout(res, 20))
    expect(first.reloads()).toBe(1)
    expect(first.models.get(`kimi-code-plan-cn/${ACCOUNT_ONLY_MODEL_ID}`)).toMatchObject({ id: ACCOUNT_ONLY_MODEL_ID, modelID: ACCOUNT_ONLY_MODEL_ID, variants: [] })
    // the next start reads the cache: the model is there at once, with no request
    emulator.clearRequests()
    const second = await setup21()
    expect(second.models.get(`kimi-code-plan-cn/${ACCOUNT_ONLY_MODEL_ID}`)).toBeDefined()
    expect(emulator.requests()).toEqual([])
  })

  it("retry: 2.1's `decision` is set to { retry: false } for a used-up quota; a rate limit is left to the host", async () => {
    const { hooks } = await setup21()
    // 2.1.2's event carries the model (NOTES.md, "Retries"): the hook registered for its provider fires.
    const quota = {
      model,
      error: { type: "provider.quota", message: "usage limit is used up", status: 403, response: { body: JSON.stringify({ error: { type: "insufficient_quota" } }) } },
      attempt: 2,
      decision: { retry: true, delay: 1806 }
    }
    await hooks["retry"]![0]!(quota)
    expect(quota.decision).toEqual({ retry: false })
    const rate = { model, error: { type: "provider.rate-limit", message: "emulated 429", status: 429, response: { body: "{}" } }, attempt: 2, decision: { retry: true, delay: 1806 } }
    await hooks["retry"]![0]!(rate)
    expect(rate.decision).toEqual({ retry: true, delay: 1806 })
  })

  it("no Kimi row in the host: http.request refuses with the login message and sends nothing, though the package has a login", async () => {
    seed(now() + 800)
    const { hooks } = await setup21(null)
    emulator.clearRequests()
    await expect(send(hooks, chat({}))).rejects.toThrow(/this OpenCode has no Kimi account connected on kimi-code-plan-cn.*opencode auth login kimi-code-plan-cn --method kimi-device/)
    expect(emulator.requests("/coding/v1/chat/completions")).toEqual([])
  })

  it("our row but no login on this machine (imported, or logged out): refused with the can't-copy message, the row's token never sent", async () => {
    const { hooks } = await setup21()
    emulator.clearRequests()
    await expect(send(hooks, chat({}))).rejects.toThrow(/cannot be copied between machines/)
    expect(emulator.requests("/coding/v1/chat/completions")).toEqual([])
  })

  it("an API-key row or KIMI_API_KEY: the key is kept, the X-Msh headers added", async () => {
    seed(now() + 800)
    for (const active of [{ type: "credential", id: "cred_k", label: "key", method: "key" }, { type: "env", name: "KIMI_API_KEY" }]) {
      const { hooks } = await setup21(active)
      emulator.clearRequests()
      await send(hooks, chat({}))
      const [c] = emulator.requests("/coding/v1/chat/completions")
      expect(c!.bearer).toBe("row-access")
      expect(c!.msh.platform).toBe("kimi_cli")
    }
  })

  it("2.1 (rows): model.request is not hooked (the route sends the row's bearer over it; http.request sets ours and the identity), and the call still carries both", async () => {
    const issued = seed(now() + 800)
    const { hooks } = await setup21()
    expect(Object.keys(hooks).sort()).toEqual(["http.request", "http.response", "retry"])
    emulator.clearRequests()
    await send(hooks, chat({}))
    const [c] = emulator.requests("/coding/v1/chat/completions")
    expect(c!.bearer).toBe(issued.accessToken)
    expect(c!.msh.platform).toBe("kimi_cli")
  })

  it("2.1: each hook is registered once per Kimi provider (`{ providerID }`), so a call to another provider runs none of ours", async () => {
    seed(now() + 800)
    const { hooks, registered } = await setup21()
    expect(registered.sort()).toEqual(["http.request", "http.response", "retry"].flatMap((n) => [[n, "kimi-code-plan-cn"], [n, "kimi-code-plan-global"]]))
    const other = new Request("http://127.0.0.1:9/v1/chat/completions", { method: "POST", headers: { authorization: "Bearer theirs" }, body: "{}" })
    const event = { model: { id: "claude", providerID: "anthropic" }, request: other }
    for (const h of hooks["http.request"]!) await h(event)
    expect(event.request).toBe(other)
    expect(event.request.headers.get("authorization")).toBe("Bearer theirs")
  })

  it("cleanup disposes every registration", async () => {
    const { disposed, cleanup } = await setup21()
    await cleanup()
    expect(disposed.sort()).toEqual(["http.request", "http.request", "http.response", "http.response", "integration", "model", "retry", "retry"])
  })
})

describe("OpenCode 2 hooks: the fast path and the guard", () => {
  it("a valid stored login is sent without the core (no Effect import on the request path)", async () => {
    const issued = seed(now() + 800)
    fs.writeFileSync(path.join(dir, "device_id"), "8f2c1d3e-0000-4000-8000-000000000001\n", { mode: 0o600 })
    const region: RegionV2 = {
      file: undefined,
      present: () => true,
      account: () => region,
      region: "mainland-cn" as const,
      providerId: "kimi-code-plan-cn",
      apiBaseUrl: emulator.apiBaseUrl,
      getCore: () => Promise.reject(new Error("the core was loaded")),
      fast: makeFastPath({ storageDir: dir, oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl }, "mainland-cn"),
      thinks: new Set(["kimi-for-coding"]),
      dispose: async () => {}
    }
    const h = makeV2Handlers([region], { active: async () => ({ type: "credential", id: "c", method: "oauth" }) })
    const event = { model, request: chat({}) }
    await h.httpRequest(event)
    expect(event.request.headers.get("authorization")).toBe(`Bearer ${issued.accessToken}`)
    expect(event.request.headers.get("x-msh-device-id")).toBe("8f2c1d3e-0000-4000-8000-000000000001")
  })

  it("guarded: our failure is swallowed (the host's call goes on), a deliberate refusal is passed on", async () => {
    const lines: Array<string> = []
    await expect(guarded("x", () => { throw new Error("boom") }, (l) => lines.push(l))({})).resolves.toBeUndefined()
    expect(lines[0]).toContain("boom")
    await expect(guarded("x", () => { throw new V2Refusal("no") }, () => {})({})).rejects.toThrow("no")
  })
})
