/**
 * `createKimi()` with the real AI SDK (`generateText`, `streamText`) over real
 * loopback HTTP and a real token file: against the emulator, and a scripted
 * server for Kimi's quota answer.
 */
import { APICallError, generateText, streamText } from "ai"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { createKimi, type KimiProvider, toKimiThinking } from "../../src/ai-sdk/index.js"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { seedLogin } from "../support/tokens.js"

let dir: string
let emu: KimiEmulator.StartedEmulator | undefined
let server: ScriptedServer | undefined
let kimi: KimiProvider | undefined
beforeEach(() => {
  dir = makeTemp("kimi-ai-sdk-")
})
afterEach(async () => {
  await kimi?.dispose()
  kimi = undefined
  await emu?.close()
  emu = undefined
  await server?.close()
  server = undefined
  rmTemp(dir)
})

/** A login on disk, as `kimi-auth login` leaves it. */
const seed = (tokens: { accessToken: string; refreshToken: string }, extra: Record<string, unknown> = {}) =>
  seedLogin(path.join(dir, "oauth.json"), {
    access: tokens.accessToken,
    refresh: tokens.refreshToken,
    expiresAt: Math.floor(Date.now() / 1000) + 800,
    extra
  })

describe("createKimi against the emulator", () => {
  it("generateText and streamText answer; an access token revoked mid-session is healed by one refresh", async () => {
    emu = await KimiEmulator.start()
    seed(emu.issueTokens())
    kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const first = await generateText({ model: kimi("kimi-for-coding"), prompt: "ping 1" })
    expect(first.text).toBe(`${KimiEmulator.GREETING}. You said: ping 1`)

    emu.expireAccessTokens()
    const streamed = streamText({ model: kimi("kimi-for-coding"), prompt: "ping 2" })
    let text = ""
    for await (const piece of streamed.textStream) text += piece
    expect(text).toBe(`${KimiEmulator.GREETING}. You said: ping 2`)
    expect((await streamed.usage).totalTokens).toBeGreaterThan(0)

    const chats = emu.requests("/coding/v1/chat/completions")
    expect(chats.map((r) => r.status)).toEqual([200, 401, 200])
    expect(emu.requests("/api/oauth/token")).toHaveLength(1)
    // The placeholder apiKey never reaches Kimi; the identity headers always do.
    expect(chats.every((r) => r.bearer !== "kimi-oauth" && r.msh.platform === "kimi_cli" && r.msh.deviceId !== undefined)).toBe(true)
    expect(kimi.apiBaseUrl()).toBe(emu.apiBaseUrl)
  })

  it("without pinned hosts, requests follow the API base stored with the login (its issuer), not the region default", async () => {
    emu = await KimiEmulator.start()
    seed(emu.issueTokens(), { oauth_host: emu.oauthHost, api_base_url: emu.apiBaseUrl, region: "global" })
    const saved = { ...process.env }
    for (const k of ["KIMI_OAUTH_HOST", "KIMI_CODE_OAUTH_HOST", "KIMI_CODE_BASE_URL"]) delete process.env[k]
    try {
      kimi = createKimi({ region: "global", storageDir: dir })
      expect(kimi.apiBaseUrl()).toBe("https://api.kimi.ai/coding/v1")
      const result = await generateText({ model: kimi("kimi-for-coding"), prompt: "issuer", maxRetries: 0 })
      expect(result.text).toBe(`${KimiEmulator.GREETING}. You said: issuer`)
      expect(kimi.apiBaseUrl()).toBe(emu.apiBaseUrl)
      expect(emu.requests("/coding/v1/chat/completions")).toHaveLength(1)
    } finally {
      process.env = saved
    }
  })

  it("no login: the AI SDK reports Kimi's login message, and nothing reaches the API", async () => {
    emu = await KimiEmulator.start()
    kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const error = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi", maxRetries: 0 }).catch((e: unknown) => e)
    expect(APICallError.isInstance(error)).toBe(true)
    expect((error as APICallError).statusCode).toBe(401)
    expect((error as Error).message).toMatch(/kimi-auth login/)
    expect(emu.requests("/coding/v1/chat/completions")).toHaveLength(0)
  })
})

describe("thinking in Kimi's format", () => {
  it("the AI SDK's reasoning option reaches Kimi as thinking, never as reasoning_effort", async () => {
    emu = await KimiEmulator.start()
    seed(emu.issueTokens())
    kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    await generateText({ model: kimi("kimi-for-coding"), prompt: "a", reasoning: "high" })
    await generateText({ model: kimi("kimi-for-coding"), prompt: "b", reasoning: "none" })
    await generateText({ model: kimi("kimi-for-coding"), prompt: "c", providerOptions: { kimi: { thinking: { type: "disabled" } } } })
    await generateText({ model: kimi("kimi-for-coding"), prompt: "d" })
    const bodies = emu.requests("/coding/v1/chat/completions").map((r) => r.json as Record<string, unknown>)
    expect(bodies.map((b) => b["thinking"])).toEqual([{ type: "enabled" }, { type: "disabled" }, { type: "disabled" }, undefined])
    expect(bodies.every((b) => !("reasoning_effort" in b))).toBe(true)
  })

  it("toKimiThinking: effort only for the models that take one; an explicit thinking wins", () => {
    expect(toKimiThinking({ model: "k3-256k", reasoning_effort: "low" })).toEqual({ model: "k3-256k", thinking: { type: "enabled", effort: "low" } })
    expect(toKimiThinking({ model: "k3", reasoning_effort: "low" })).toEqual({ model: "k3", thinking: { type: "enabled" } })
    expect(toKimiThinking({ model: "k3", reasoning_effort: "high", thinking: { type: "disabled" } })).toEqual({ model: "k3", thinking: { type: "disabled" } })
    const plain = { model: "k3" }
    expect(toKimiThinking(plain)).toBe(plain)
  })
})

describe("createKimi and the emulator's quota and thinking", () => {
  it("streamText with thinking: reasoning_content arrives as the AI SDK's reasoning, before the text", async () => {
    emu = await KimiEmulator.start()
    seed(emu.issueTokens())
    kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const result = streamText({ model: kimi("kimi-for-coding"), prompt: "deep", reasoning: "high" })
    const order: Array<string> = []
    for await (const part of result.fullStream) if (part.type === "reasoning-delta" || part.type === "text-delta") order.push(part.type)
    expect(await result.reasoningText).toMatch(/^Thinking: the user said "deep"/)
    expect(await result.text).toBe(`${KimiEmulator.GREETING}. You said: deep`)
    expect(order.indexOf("text-delta")).toBeGreaterThan(order.lastIndexOf("reasoning-delta"))
  })

  for (const refusal of [403, 429] as const) {
    it(`a used-up quota (${refusal} from the emulator) is one non-retried request and a message with the reset`, async () => {
      emu = await KimiEmulator.start({ quota: { refusal }, usages: "old" })
      seed(emu.issueTokens())
      emu.exhaustQuota()
      kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
      const error = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi" }).catch((e: unknown) => e)
      expect(APICallError.isInstance(error)).toBe(true)
      expect((error as APICallError).statusCode).toBe(403)
      expect((error as APICallError).isRetryable).toBe(false)
      expect((error as Error).message).toMatch(/usage limit is used up \(weekly window: 1000 of 1000 used\); it resets at .* \(in (6 d 23 h|7 d 0 h)\)\. This is not a login problem/)
      expect(emu.requests("/coding/v1/chat/completions").map((r) => r.status)).toEqual([refusal])
      expect(emu.requests("/coding/v1/usages")).toHaveLength(1)
      expect(emu.requests("/api/oauth/token")).toHaveLength(0)
    })
  }

  it("a plain rate limit stays a retryable 429 for the AI SDK", async () => {
    emu = await KimiEmulator.start({ quota: { rateLimited: true, retryAfterSeconds: 0 } })
    seed(emu.issueTokens())
    kimi = createKimi({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir })
    const error = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi", maxRetries: 1 }).catch((e: unknown) => e)
    const last = (error as { lastError?: unknown }).lastError ?? error
    expect(APICallError.isInstance(last)).toBe(true)
    expect((last as APICallError).statusCode).toBe(429)
    expect(emu.requests("/coding/v1/chat/completions")).toHaveLength(2)
    expect(emu.requests("/api/oauth/token")).toHaveLength(0)
  })
})

describe("createKimi and the quota", () => {
  it("a used-up quota is a clear, non-retried error naming the window and its reset", async () => {
    server = await startScriptedServer((req) =>
      req.path.endsWith("/usages")
        ? { status: 200, body: { usage: { limit: "100", used: "100", remaining: "0", resetTime: new Date(Date.now() + 3 * 3_600_000 + 30_000).toISOString() } } }
        : { status: 429, body: { error: { message: "You exceeded your current quota", type: "exceeded_current_quota_error" } } }
    )
    seed({ accessToken: "at-1", refreshToken: "rt-1" })
    kimi = createKimi({ oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1`, storageDir: dir })
    const error = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi" }).catch((e: unknown) => e)
    expect(APICallError.isInstance(error)).toBe(true)
    const e = error as APICallError
    expect(e.statusCode).toBe(403)
    expect(e.isRetryable).toBe(false)
    expect(e.message).toMatch(/usage limit is used up \(weekly window: 100 of 100 used\); it resets at .* \(in 3 h 00 min\)/)
    expect(e.message).toMatch(/This is not a login problem/)
    // One chat request (the AI SDK's retries never fire) and one /usages read; no refresh.
    expect(server.requests.map((r) => r.path)).toEqual(["/coding/v1/chat/completions", "/coding/v1/usages"])
  })

  it("a bad setting throws at creation with what to fix", () => {
    expect(() => createKimi({ apiBaseUrl: "http://api.example.com/coding/v1", storageDir: dir })).toThrow(/createKimi: .*plain http/)
  })
})
