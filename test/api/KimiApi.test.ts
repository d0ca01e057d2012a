/**
 * The typed Kimi API service, end to end over real loopback HTTP and real
 * files: against the emulator, and against a scripted server for the
 * answers the emulator does not give.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Stream from "effect/Stream"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import * as HttpClient from "effect/http/HttpClient"
import { chatBody, deltasOfLine, KimiApi } from "../../src/api/KimiApi.js"
import * as KimiHttpClient from "../../src/request/KimiHttpClient.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

let dir: string
let emu: KimiEmulator.StartedEmulator | undefined
let server: ScriptedServer | undefined
beforeEach(() => {
  dir = makeTemp("kimi-api-")
})
afterEach(async () => {
  await emu?.close()
  emu = undefined
  await server?.close()
  server = undefined
  rmTemp(dir)
})

/** Runs a program with KimiApi.layerNode against `oauthHost` / `apiBaseUrl`, logged in with `tokens` first. */
const run = <A, E>(
  hosts: { oauthHost: string; apiBaseUrl: string },
  tokens: { accessToken: string; refreshToken: string } | undefined,
  program: Effect.Effect<A, E, KimiApi>
) =>
  Effect.runPromise(
    Effect.gen(function*() {
      if (tokens) {
        const now = Math.floor(Date.now() / 1000)
        yield* Effect.flatMap(TokenManager, (m) =>
          m.setTokens(new TokenSet({
            accessToken: Redacted.make(tokens.accessToken),
            refreshToken: Redacted.make(tokens.refreshToken),
            tokenType: "Bearer",
            expiresIn: 900,
            scope: "kimi-code",
            expiresAt: now + 900
          })))
      }
      return yield* Effect.result(program)
    }).pipe(Effect.provide(KimiApi.layerNode({ ...hosts, storageDir: dir }).pipe(Layer.orDie)))
  )

const api = KimiApi.use(Effect.succeed)

describe("KimiApi against the emulator", () => {
  it("models, a whole chat and a streamed chat; a 401 mid-session is healed by one refresh", async () => {
    emu = await KimiEmulator.start()
    const result = await run(emu, emu.issueTokens(), Effect.gen(function*() {
      const kimi = yield* api
      const models = yield* kimi.models
      const whole = yield* kimi.chat({ model: models[0]!.id, messages: [{ role: "user", content: "ping 1" }] })
      emu!.expireAccessTokens()
      const streamed = yield* kimi.chatStream({ model: "kimi-for-coding", messages: [{ role: "user", content: "ping 2" }] }).pipe(Stream.runCollect)
      return { models, whole, streamed }
    }))
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    const { models, whole, streamed } = result.success
    expect(models[0]).toMatchObject({ id: "kimi-for-coding", displayName: "Kimi For Coding", supportsReasoning: true })
    expect(models[0]!.contextLength).toBeGreaterThan(0)
    expect(whole).toMatchObject({ content: `${KimiEmulator.GREETING}. You said: ping 1`, finishReason: "stop" })
    expect(whole.usage?.totalTokens).toBeGreaterThan(0)
    expect(streamed.map((d) => d.content ?? "").join("")).toBe(`${KimiEmulator.GREETING}. You said: ping 2`)
    expect(streamed.some((d) => d.finishReason === "stop")).toBe(true)
    expect(streamed.at(-1)?.usage?.totalTokens).toBeGreaterThan(0)
    const chats = emu.requests("/coding/v1/chat/completions")
    expect(chats.map((r) => r.status)).toEqual([200, 401, 200])
    expect(emu.requests("/api/oauth/token")).toHaveLength(1)
    expect(chats.every((r) => r.msh.deviceId !== undefined && r.msh.platform === "kimi_cli")).toBe(true)
  })

  it("thinking: reasoning_content deltas stream first, then the answer; usage counts the chats; a used-up window is a typed QuotaExceededError", async () => {
    emu = await KimiEmulator.start({ quota: { fiveHourLimit: 3, weeklyLimit: 50 }, usages: "old" })
    const result = await run(emu, emu.issueTokens(), Effect.gen(function*() {
      const kimi = yield* api
      const deltas = yield* kimi.chatStream({ model: "kimi-for-coding", thinking: true, messages: [{ role: "user", content: "think" }] }).pipe(Stream.runCollect)
      const whole = yield* kimi.chat({ model: "kimi-for-coding", thinking: true, messages: [{ role: "user", content: "again" }] })
      const usage = yield* kimi.usage
      emu!.exhaustQuota("fiveHour")
      const refused = yield* Effect.flip(kimi.chat({ model: "kimi-for-coding", messages: [{ role: "user", content: "more" }] }))
      return { deltas, whole, usage, refused }
    }))
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    const { deltas, whole, usage, refused } = result.success
    const firstContent = deltas.findIndex((d) => d.content !== undefined && d.content !== "")
    const reasoning = deltas.filter((d) => d.reasoningContent !== undefined)
    expect(reasoning.length).toBeGreaterThan(1)
    expect(deltas.indexOf(reasoning.at(-1)!)).toBeLessThan(firstContent)
    expect(reasoning.map((d) => d.reasoningContent).join("")).toMatch(/^Thinking: the user said "think"/)
    expect(whole.reasoningContent).toMatch(/^Thinking: the user said "again"/)
    expect(usage.windows.map((w) => [w.label, w.used, w.limit])).toEqual([["weekly", 2, 50], ["5-hour", 2, 3]])
    expect(refused._tag).toBe("QuotaExceededError")
    if (refused._tag === "QuotaExceededError") {
      expect(refused.status).toBe(403)
      expect(refused.window?.label).toBe("5-hour")
      expect(refused.resetsAt?.getTime()).toBe(emu.quota().fiveHour.resetAt)
      expect(refused.message).toMatch(/5-hour window: 3 of 3 used\); it resets at /)
    }
    expect(emu.requests("/api/oauth/token")).toHaveLength(0)
  })

  it("no login: NotLoggedInError naming the login command, and nothing sent", async () => {
    emu = await KimiEmulator.start()
    const result = await run(emu, undefined, Effect.flatMap(api, (k) => k.models))
    expect(result._tag).toBe("Failure")
    if (result._tag === "Failure") {
      expect(result.failure._tag).toBe("NotLoggedInError")
      expect(result.failure.message).toMatch(/kimi-auth login/)
    }
    expect(emu.requests("/coding/v1/models")).toHaveLength(0)
  })
})

describe("KimiApi against a scripted server", () => {
  const serve = async (handler: (path: string, body: string) => Reply) => {
    server = await startScriptedServer((req) => handler(req.path, req.body))
    return { oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` }
  }
  const login = { accessToken: "at-1", refreshToken: "rt-1" }

  it("usage: Kimi's /usages decoded (numbers from strings, the 5-hour window)", async () => {
    const hosts = await serve(() => ({
      status: 200,
      body: {
        usage: { limit: "100", used: "13", remaining: "87", resetTime: "2026-12-07T00:00:00Z" },
        limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "5", remaining: "15", resetTime: "2026-11-30T19:00:00Z" } }],
        parallel: { limit: "20" },
        somethingNew: [1, 2]
      }
    }))
    const result = await run(hosts, login, Effect.flatMap(api, (k) => k.usage))
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    expect(result.success.windows.map((w) => [w.label, w.used, w.limit])).toEqual([["weekly", 13, 100], ["5-hour", 5, 20]])
    expect(result.success.parallelLimit).toBe(20)
    expect(server!.requests[0]!.headers["authorization"]).toBe("Bearer at-1")
  })

  it("a streamed chat with thinking: reasoning_content deltas (an empty one too), then content; the body says thinking enabled", async () => {
    const sse = [
      { choices: [{ index: 0, delta: { role: "assistant", reasoning_content: "" } }] },
      { choices: [{ index: 0, delta: { reasoning_content: "Let me think." } }] },
      { choices: [{ index: 0, delta: { content: "Hello" } }] },
      { choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }
    ].map((c) => `data: ${JSON.stringify(c)}\n\n`).join("") + ": keep-alive\n\ndata: [DONE]\n\n"
    const hosts = await serve(() => ({ status: 200, body: sse, headers: { "content-type": "text/event-stream" } }))
    const result = await run(hosts, login, Effect.flatMap(api, (k) =>
      k.chatStream({ model: "k3", thinking: true, messages: [{ role: "user", content: "hi" }] }).pipe(Stream.runCollect)))
    expect(result._tag).toBe("Success")
    if (result._tag !== "Success") return
    expect(result.success.map((d) => [d.reasoningContent, d.content, d.finishReason])).toEqual([
      ["", undefined, undefined],
      ["Let me think.", undefined, undefined],
      [undefined, "Hello", undefined],
      [undefined, undefined, "stop"]
    ])
    expect(JSON.parse(server!.requests[0]!.body)).toMatchObject({ model: "k3", stream: true, thinking: { type: "enabled" } })
  })

  it("typed failures: quota, rate limit, another status, an undecodable answer; no token in any", async () => {
    const replies: Record<string, Reply> = {
      "/coding/v1/chat/completions": { status: 429, body: { error: { message: "quota", type: "exceeded_current_quota_error" } } },
      "/coding/v1/usages": { status: 429, body: { error: { message: "too many requests", type: "rate_limit_reached_error" } }, headers: { "retry-after": "4" } },
      "/coding/v1/models": { status: 200, body: "<html>not json</html>" }
    }
    const hosts = await serve((path) => replies[path] ?? { status: 404, body: { error: { message: "nope" } } })
    const outcome = await run(hosts, login, Effect.gen(function*() {
      const kimi = yield* api
      const quota = yield* Effect.flip(kimi.chat({ model: "kimi-for-coding", messages: [{ role: "user", content: "x" }] }))
      const limited = yield* Effect.flip(kimi.usage)
      const garbled = yield* Effect.flip(kimi.models)
      return { quota, limited, garbled }
    }))
    expect(outcome._tag).toBe("Success")
    if (outcome._tag !== "Success") return
    const { quota, limited, garbled } = outcome.success
    expect(quota._tag).toBe("QuotaExceededError")
    expect(limited).toMatchObject({ _tag: "RateLimitedError", retryAfterMillis: 4000 })
    expect(garbled).toMatchObject({ _tag: "KimiApiError", status: 200 })
    for (const e of [quota, limited, garbled]) expect(JSON.stringify(e) + String(e)).not.toMatch(/at-1|rt-1/)
  })
})

describe("KimiHttpClient.layerNode", () => {
  it("the HttpClient.HttpClient it provides is the authorizing one (not the platform's underneath)", async () => {
    emu = await KimiEmulator.start()
    const { accessToken, refreshToken } = emu.issueTokens()
    const status = await Effect.runPromise(
      Effect.gen(function*() {
        const now = Math.floor(Date.now() / 1000)
        yield* Effect.flatMap(TokenManager, (m) =>
          m.setTokens(new TokenSet({ accessToken: Redacted.make(accessToken), refreshToken: Redacted.make(refreshToken), tokenType: "Bearer", expiresIn: 900, scope: "kimi-code", expiresAt: now + 900 })))
        const response = yield* HttpClient.get(`${emu!.apiBaseUrl}/models`)
        return response.status
      }).pipe(Effect.provide(KimiHttpClient.layerNode({ oauthHost: emu.oauthHost, apiBaseUrl: emu.apiBaseUrl, storageDir: dir }).pipe(Layer.orDie)))
    )
    expect(status).toBe(200)
    expect(emu.requests("/coding/v1/models").map((r) => r.bearer)).toEqual([accessToken])
  })
})

describe("KimiApi reads capped bodies", () => {
  it("a /models answer past the cap (4 MiB) is a KimiApiError, not a process that grows", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: { data: [{ id: "x".repeat(5 * 1024 * 1024) }] } }))
    const result = await run(
      { oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` },
      { accessToken: "at-1", refreshToken: "rt-1" },
      Effect.flatMap(api, (k) => k.models)
    )
    expect(result._tag).toBe("Failure")
    if (result._tag === "Failure") {
      expect(result.failure._tag).toBe("KimiApiError")
      expect(result.failure.message).toMatch(/(larger|more) than the 4194304 bytes allowed/)
    }
  })
})

describe("pure pieces", () => {
  it("chatBody sends Kimi's thinking format and the usage option when streaming", () => {
    expect(chatBody({ model: "k3", messages: [], thinking: false, maxTokens: 5 }, true)).toEqual({
      model: "k3",
      messages: [],
      stream: true,
      stream_options: { include_usage: true },
      thinking: { type: "disabled" },
      max_tokens: 5
    })
    expect(chatBody({ model: "k3", messages: [] }, false)).toEqual({ model: "k3", messages: [], stream: false })
  })

  it("deltasOfLine ignores comments, other fields, [DONE] and garbage", () => {
    for (const line of [": ping", "event: x", "data: [DONE]", "data: {not json", "data: 42", ""]) expect(deltasOfLine(line)).toEqual([])
    expect(deltasOfLine('data: {"choices":[],"usage":{"total_tokens":3}}')).toEqual([
      { content: undefined, reasoningContent: undefined, finishReason: undefined, usage: { promptTokens: undefined, completionTokens: undefined, totalTokens: 3 } }
    ])
  })
})
