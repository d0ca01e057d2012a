/**
 * The emulator's models and thinking: OpenCode's catalog ids plus one
 * account-only model in `GET /models`; `reasoning_content` before the answer
 * when the body asks for thinking (streamed and not); the recorded bodies.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { chat, models } from "./http.js"

const P = <A>(f: () => Promise<A>) => Effect.promise(f)
const ask = (over: Record<string, unknown>) => ({
  model: "kimi-for-coding",
  messages: [{ role: "user", content: "ping 42" }],
  ...over
})

/** The SSE events of a streamed answer: reasoning and content, in arrival order. */
const parseStream = (text: string) => {
  const events = text.split("\n\n").filter((e) => e !== "")
  assert.strictEqual(events.at(-1), "data: [DONE]")
  const deltas = events.slice(0, -1).map((e) => JSON.parse(e.slice("data: ".length))).flatMap((c) =>
    c.choices.map((ch: any) => ch.delta)
  )
  const order = deltas.flatMap((d: any) => [
    ...(typeof d.reasoning_content === "string" ? ["reasoning"] : []),
    ...(typeof d.content === "string" && d.content !== "" ? ["content"] : [])
  ])
  return {
    reasoning: deltas.map((d: any) => d.reasoning_content ?? "").join(""),
    content: deltas.map((d: any) => d.content ?? "").join(""),
    sawReasoning: deltas.some((d: any) => "reasoning_content" in d),
    order
  }
}

const ANSWER = "Hello from the Kimi emulator. You said: ping 42"

describe("emulator models and thinking", () => {
  it.effect("GET /models: OpenCode's catalog ids with their context and reasoning, plus one account-only model", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const r = yield* P(() => models(emu.apiBaseUrl, accessToken))
      assert.strictEqual(r.status, 200)
      const byId = new Map<string, any>(r.json.data.map((m: any) => [m.id, m]))
      assert.deepStrictEqual([...byId.keys()], [
        "kimi-for-coding",
        "kimi-for-coding-highspeed",
        "k3",
        "k3-256k",
        KimiEmulator.ACCOUNT_ONLY_MODEL_ID
      ])
      assert.deepInclude(byId.get("kimi-for-coding"), { context_length: 1_048_576, supports_reasoning: true })
      assert.deepInclude(byId.get("k3-256k"), { context_length: 262_144, supports_reasoning: true })
      assert.deepStrictEqual(byId.get("k3-256k").think_efforts.valid_efforts, ["low", "high", "max"])
      for (const m of byId.values()) {
        assert.strictEqual(m.object, "model")
        assert.isString(m.display_name)
        assert.isNumber(m.context_length)
        assert.isBoolean(m.supports_reasoning)
      }
      assert.strictEqual(byId.get(KimiEmulator.ACCOUNT_ONLY_MODEL_ID).supports_thinking_type, "only")
    }))

  it.effect("streamed: thinking enabled sends reasoning_content chunks before the content; disabled or absent sends none", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const stream = (over: Record<string, unknown>) =>
        P(() => chat(emu.apiBaseUrl, accessToken, ask({ stream: true, ...over }))).pipe(
          Effect.map((r) => {
            assert.strictEqual(r.status, 200)
            return parseStream(r.text)
          })
        )

      const on = yield* stream({ thinking: { type: "enabled" } })
      assert.strictEqual(on.content, ANSWER)
      assert.strictEqual(on.reasoning, `Thinking: the user said "ping 42"; I will greet them and repeat it.`)
      const firstContent = on.order.indexOf("content")
      assert.isAbove(on.order.lastIndexOf("reasoning", firstContent), 0, "several reasoning chunks")
      assert.isFalse(on.order.slice(firstContent).includes("reasoning"), "no reasoning after the content started")

      const effort = yield* stream({ thinking: { type: "enabled", effort: "max" } })
      assert.match(effort.reasoning, /^Thinking \(effort max\): /)

      const off = yield* stream({ thinking: { type: "disabled" } })
      assert.strictEqual(off.content, ANSWER)
      assert.isFalse(off.sawReasoning)
      const absent = yield* stream({})
      assert.isFalse(absent.sawReasoning)

      // A model id containing "thinking" always thinks, whatever the body says.
      const always = yield* stream({ model: KimiEmulator.ACCOUNT_ONLY_MODEL_ID, thinking: { type: "disabled" } })
      assert.isTrue(always.sawReasoning)
      assert.strictEqual(always.content, ANSWER)

      // Every body is recorded as it arrived, so a client's translation can be asserted.
      assert.deepStrictEqual(
        emu.chatBodies().map((b: any) => b.thinking),
        [{ type: "enabled" }, { type: "enabled", effort: "max" }, { type: "disabled" }, undefined, { type: "disabled" }]
      )
      assert.deepStrictEqual(emu.chatBodies()[1], ask({ stream: true, thinking: { type: "enabled", effort: "max" } }))
    }))

  it.effect("not streamed: message.reasoning_content beside the content when thinking, absent when not", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const { accessToken } = emu.issueTokens()
      const on = yield* P(() => chat(emu.apiBaseUrl, accessToken, ask({ model: "k3", thinking: { type: "enabled", effort: "low" } })))
      assert.strictEqual(on.status, 200)
      assert.strictEqual(on.json.model, "k3")
      assert.deepStrictEqual(on.json.choices[0].message, {
        role: "assistant",
        content: ANSWER,
        reasoning_content: `Thinking (effort low): the user said "ping 42"; I will greet them and repeat it.`
      })
      const off = yield* P(() => chat(emu.apiBaseUrl, accessToken, ask({ thinking: { type: "disabled" } })))
      assert.deepStrictEqual(off.json.choices[0].message, { role: "assistant", content: ANSWER })
    }))
})
