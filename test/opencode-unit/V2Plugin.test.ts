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
import { start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import serverV2 from "../../src/opencode/server-v2.js"
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
    expect(credential).toEqual({ type: "oauth", methodID: V2_METHOD_ID, access: stored.access_token, refresh: REFRESH_MARKER, expires: stored.expires_at * 1000 })
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

  it("refresh with no login throws a message naming OpenCode 2's login (/connect), not 1.18's `opencode auth login`", async () => {
    const { methods } = await setup()
    await expect(methods[0].refresh({ type: "oauth", methodID: V2_METHOD_ID, access: "x", refresh: REFRESH_MARKER, expires: 0 }))
      .rejects.toThrow(/in OpenCode, use `\/connect`, pick Kimi For Coding \(kimi\.com\) \(kimi-code-plan-cn\), then "Kimi device login"; or run `kimi-auth login`/)
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
