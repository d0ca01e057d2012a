/**
 * The OpenAI-compatible Kimi Code API of the emulator: models, chat
 * completions (JSON and SSE), bearer checks and recording.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { chat, models, request } from "./http.js"

const P = <A>(f: () => Promise<A>) => Effect.promise(f)
const hello = { model: "kimi-for-coding", messages: [{ role: "system", content: "be brief" }, { role: "user", content: "ping 42" }] }

describe("emulator API", () => {
  it.effect("GET /models lists kimi-for-coding with its capabilities", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const r = yield* P(() => models(emu.apiBaseUrl, accessToken))
      assert.strictEqual(r.status, 200)
      assert.strictEqual(r.json.object, "list")
      const [m] = r.json.data
      assert.deepInclude(m, {
        id: "kimi-for-coding",
        object: "model",
        context_length: 1048576,
        supports_reasoning: true,
        supports_image_in: true
      })
      assert.isString(m.display_name)
      assert.strictEqual(emu.requests("/coding/v1/models")[0]!.bearer, accessToken)
    }))

  it.effect("chat completions answer deterministically with the last user message", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const r = yield* P(() => chat(emu.apiBaseUrl, accessToken, hello))
      assert.strictEqual(r.status, 200)
      assert.strictEqual(r.json.object, "chat.completion")
      assert.strictEqual(r.json.model, "kimi-for-coding")
      assert.deepStrictEqual(r.json.choices, [{
        index: 0,
        message: { role: "assistant", content: "Hello from the Kimi emulator. You said: ping 42" },
        finish_reason: "stop"
      }])
      assert.isAbove(r.json.usage.total_tokens, 0)
      // content given as parts works too
      const parts = yield* P(() =>
        chat(emu.apiBaseUrl, accessToken, {
          model: "kimi-for-coding",
          messages: [{ role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }]
        })
      )
      assert.strictEqual(parts.json.choices[0].message.content, "Hello from the Kimi emulator. You said: ab")
      const rec = emu.requests("/coding/v1/chat/completions")[0]!
      assert.strictEqual(rec.bearer, accessToken)
      assert.deepStrictEqual(rec.json, hello)
    }))

  it.effect("stream: true answers SSE chat.completion.chunk events ending with [DONE]", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const r = yield* P(() =>
        chat(emu.apiBaseUrl, accessToken, { ...hello, stream: true, stream_options: { include_usage: true } })
      )
      assert.strictEqual(r.status, 200)
      assert.include(r.headers.get("content-type") ?? "", "text/event-stream")
      assert.isTrue(r.text.endsWith("data: [DONE]\n\n"))
      const events = r.text.split("\n\n").filter((e) => e !== "")
      for (const e of events) assert.match(e, /^data: /)
      assert.strictEqual(events.at(-1), "data: [DONE]")
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice("data: ".length)))
      for (const c of chunks) assert.strictEqual(c.object, "chat.completion.chunk")
      assert.strictEqual(new Set(chunks.map((c) => c.id)).size, 1)
      assert.strictEqual(chunks[0].choices[0].delta.role, "assistant")
      const text = chunks.flatMap((c) => c.choices).map((ch: any) => ch.delta.content ?? "").join("")
      assert.strictEqual(text, "Hello from the Kimi emulator. You said: ping 42")
      const withChoices = chunks.filter((c) => c.choices.length > 0)
      assert.strictEqual(withChoices.at(-1).choices[0].finish_reason, "stop")
      assert.isAbove(chunks.at(-1).usage.total_tokens, 0, "include_usage adds a final usage chunk")
    }))

  it.effect("a missing, unknown, expired or revoked bearer gets a 401 OpenAI-style error", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ accessTokenTtlSeconds: 60 })
      const valid = emu.issueTokens()
      const check = (r: { status: number; json: any }, why: string) => {
        assert.strictEqual(r.status, 401, why)
        assert.strictEqual(r.json.error.type, "invalid_authentication_error", why)
        assert.isString(r.json.error.message)
      }
      check(yield* P(() => chat(emu.apiBaseUrl, undefined, hello)), "missing")
      check(yield* P(() => chat(emu.apiBaseUrl, "emu_at_forged", hello)), "unknown")
      check(
        yield* P(() => request(`${emu.apiBaseUrl}/models`, { headers: { authorization: `Basic ${valid.accessToken}` } })),
        "not bearer"
      )
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, valid.accessToken, hello))).status, 200)
      yield* TestClock.adjust("60 seconds")
      check(yield* P(() => chat(emu.apiBaseUrl, valid.accessToken, hello)), "expired")
      check(yield* P(() => models(emu.apiBaseUrl, valid.accessToken)), "expired")
      const s = emu.stats()
      assert.strictEqual(s.apiRequests, 6)
      assert.strictEqual(s.apiUnauthorized, 5)
      assert.deepStrictEqual(
        emu.requests().map((r) => r.status),
        [401, 401, 401, 200, 401, 401]
      )
    }))

  it.effect("rejects a non-JSON body, empty messages and unknown models with 400", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const bad = yield* P(() =>
        request(`${emu.apiBaseUrl}/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${accessToken}`, "content-type": "text/plain" },
          body: "hi"
        })
      )
      assert.strictEqual(bad.status, 400)
      assert.strictEqual(bad.json.error.type, "invalid_request_error")
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, { model: "kimi-for-coding", messages: [] }))).status, 400)
      assert.strictEqual((yield* P(() => chat(emu.apiBaseUrl, accessToken, { ...hello, model: "gpt-4" }))).status, 400)
    }))
})
