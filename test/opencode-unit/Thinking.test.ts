/** Kimi's thinking switch from OpenCode's bodies: each variant OpenCode 1.18.33 sends (test/opencode/NOTES.md). */
import { describe, expect, it } from "vitest"
import { thinkingOf, toKimiThinking } from "../../src/opencode/Thinking.js"

const body = (extra: Record<string, unknown>) => JSON.stringify({ model: "kimi-for-coding", messages: [], stream: true, ...extra })
const parsed = (s: string) => JSON.parse(s) as Record<string, unknown>

describe("toKimiThinking", () => {
  it("an effort variant (reasoning_effort low/high/max) becomes thinking enabled with that effort, and reasoning_effort is gone", () => {
    for (const effort of ["low", "high", "max"]) {
      const out = parsed(toKimiThinking(body({ reasoning_effort: effort })))
      expect(out["thinking"]).toEqual({ type: "enabled", effort })
      expect(out).not.toHaveProperty("reasoning_effort")
      expect(out["messages"]).toEqual([])
      expect(out["stream"]).toBe(true)
    }
  })

  it("reasoning_effort none/off becomes thinking disabled", () => {
    for (const effort of ["none", "off", "disabled"]) {
      expect(parsed(toKimiThinking(body({ reasoning_effort: effort })))["thinking"]).toEqual({ type: "disabled" })
    }
  })

  it("a thinking field already there (the plugin's off variant, a user's variant) wins; a leftover reasoning_effort goes", () => {
    const off = body({ thinking: { type: "disabled" } })
    expect(toKimiThinking(off)).toBe(off)
    const both = parsed(toKimiThinking(body({ thinking: { type: "enabled", effort: "max" }, reasoning_effort: "low" })))
    expect(both["thinking"]).toEqual({ type: "enabled", effort: "max" })
    expect(both).not.toHaveProperty("reasoning_effort")
  })

  it("no reasoning field: enabled for a model that thinks by default, untouched otherwise", () => {
    const plain = body({})
    expect(toKimiThinking(plain)).toBe(plain)
    const thinks = (m: string) => m === "kimi-for-coding"
    expect(parsed(toKimiThinking(plain, { thinksByDefault: thinks }))["thinking"]).toEqual({ type: "enabled" })
    const other = JSON.stringify({ model: "something-else", messages: [] })
    expect(toKimiThinking(other, { thinksByDefault: thinks })).toBe(other)
  })

  it("the no-variant fast path (no parse) gives the same object as the parsing path, and valid JSON", () => {
    const thinks = () => true
    for (const b of [
      body({}),
      JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "{\"model\":\"x\"}" }] }),
      `{ "model" : "k3" , "stream": true}`
    ]) {
      const fast = toKimiThinking(b, { thinksByDefault: thinks })
      expect(JSON.parse(fast)).toEqual({ ...JSON.parse(b), thinking: { type: "enabled" } })
    }
    const other = JSON.stringify({ messages: [], model: "kimi-for-coding" }) // model not first: the parsing path
    expect(parsed(toKimiThinking(other, { thinksByDefault: thinks }))["thinking"]).toEqual({ type: "enabled" })
    const notThinking = body({})
    expect(toKimiThinking(notThinking, { thinksByDefault: () => false })).toBe(notThinking)
  })

  it("takesEffort: an effort for a model that takes none becomes plain enabled; off stays off", () => {
    const takesEffort = (m: string) => m === "k3-256k"
    expect(thinkingOf({ model: "k3-256k", reasoning_effort: "high" }, { takesEffort })).toEqual({ model: "k3-256k", thinking: { type: "enabled", effort: "high" } })
    expect(thinkingOf({ model: "kimi-for-coding-highspeed", reasoning_effort: "high" }, { takesEffort })).toEqual({ model: "kimi-for-coding-highspeed", thinking: { type: "enabled" } })
    expect(thinkingOf({ model: "kimi-for-coding-highspeed", reasoning_effort: "none" }, { takesEffort })).toEqual({ model: "kimi-for-coding-highspeed", thinking: { type: "disabled" } })
  })

  it("anything that is not a JSON object comes back as it was, without a throw", () => {
    for (const s of ["", "not json", "[1,2]", "null", "\"reasoning_effort\""]) {
      expect(toKimiThinking(s, { thinksByDefault: () => true })).toBe(s)
    }
    expect(thinkingOf(undefined)).toBeUndefined()
    expect(thinkingOf({ model: "m", reasoning_effort: 3 })).toEqual({ model: "m" })
  })
})
