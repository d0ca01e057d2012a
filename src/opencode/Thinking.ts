/**
 * Kimi's thinking switch, from what OpenCode and the AI SDK send.
 *
 * Kimi For Coding reads `thinking: { type: "enabled" | "disabled", effort? }`
 * in the chat body (Moonshot's own CLI stopped sending `reasoning_effort` in
 * July 2026). OpenCode 1.18.33 sends, through `@ai-sdk/openai-compatible`,
 * `reasoning_effort: "<effort>"` for a model's effort variants (`low`, `high`,
 * `max`) and for its title request (`low`), and no reasoning field at all
 * otherwise (test/opencode/NOTES.md, "Thinking"). This pure function rewrites
 * such a body into Kimi's form; it imports nothing, so the plugin's fetch and
 * an AI SDK user's own fetch can both use it.
 *
 * @since 0.2.0
 */

/** Efforts that mean "no thinking" when they arrive as `reasoning_effort`. */
const OFF = new Set(["none", "off", "disabled", "false"])

/** What {@link toKimiThinking} may know about the models. */
export interface ThinkingOptions {
  /**
   * Whether a model thinks by default. A body for such a model that says
   * nothing about reasoning gets `thinking: { type: "enabled" }`; for any other
   * model it is left as it is (the server's default applies).
   */
  readonly thinksByDefault?: ((model: string) => boolean) | undefined
  /**
   * Whether a model's thinking takes an effort. An effort for a model that
   * takes none becomes a plain `thinking: { type: "enabled" }`. Unset: every
   * model takes one (OpenCode only sends the efforts a model's variants offer).
   */
  readonly takesEffort?: ((model: string) => boolean) | undefined
}

/** A body that opens with a plain `"model": "<id>"` member (what `@ai-sdk/openai-compatible` sends). */
const LEADING_MODEL = /^\{\s*"model"\s*:\s*"([A-Za-z0-9._:\/-]+)"\s*,/

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Rewrites a chat completion body into Kimi's thinking format:
 *
 * - `reasoning_effort: e` becomes `thinking: { type: "enabled", effort: e }`
 *   (`none`/`off`/`disabled` become `thinking: { type: "disabled" }`) and the
 *   field is removed;
 * - a body that already carries `thinking` keeps it (a variant the user
 *   configured wins), only a leftover `reasoning_effort` is removed;
 * - a body with neither gets `thinking: { type: "enabled" }` when
 *   `thinksByDefault(model)` says so, and is otherwise returned unchanged.
 *
 * Returns the same string when nothing changes, and for anything that is not
 * a JSON object (never throws).
 */
export const toKimiThinking = (body: string, options: ThinkingOptions = {}): string => {
  const mentions = body.includes("\"reasoning_effort\"") || body.includes("\"thinking\"")
  if (!mentions) {
    if (options.thinksByDefault === undefined) return body
    // The common case on every request (no variant chosen): the AI SDK's body starts with its model.
    // Splice the field in without parsing and re-serializing the whole conversation.
    const head = LEADING_MODEL.exec(body)
    if (head !== null) return options.thinksByDefault(head[1]!) ? `{"thinking":{"type":"enabled"},${body.slice(1)}` : body
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return body
  }
  const out = thinkingOf(parsed, options)
  return out === parsed ? body : JSON.stringify(out)
}

/**
 * The same rule on a parsed body: returns `body` itself when nothing changes,
 * else a shallow copy with the thinking fields rewritten.
 */
export const thinkingOf = (body: unknown, options: ThinkingOptions = {}): unknown => {
  if (!isRecord(body)) return body
  const { reasoning_effort: effort, ...rest } = body
  if (isRecord(body["thinking"])) return effort === undefined ? body : rest
  if (typeof effort === "string" && effort !== "") {
    const e = effort.toLowerCase()
    if (OFF.has(e)) return { ...rest, thinking: { type: "disabled" } }
    const model = rest["model"]
    const withEffort = options.takesEffort === undefined || (typeof model === "string" && options.takesEffort(model))
    return { ...rest, thinking: withEffort ? { type: "enabled", effort: e } : { type: "enabled" } }
  }
  if (effort !== undefined) return rest
  const model = body["model"]
  if (typeof model === "string" && options.thinksByDefault?.(model) === true) return { ...body, thinking: { type: "enabled" } }
  return body
}
