/**
 * The models the Kimi emulator serves, and its thinking rule.
 *
 * The first four are the ids of OpenCode's bundled catalog for Kimi For
 * Coding (read from the opencode 1.18.33 binary: context lengths and
 * reasoning options as it lists them); the fifth is only in the account's
 * `GET /models`, so a client can show that the account's list is added to the
 * catalog, not a replacement for it.
 *
 * Thinking follows Kimi's chat body: `thinking: { type: "enabled" }` (with an
 * optional `effort`) turns it on, `{ type: "disabled" }` or no `thinking`
 * field leaves it off, and a model whose id contains `thinking` always thinks.
 *
 * @since 0.1.0
 */

/** One entry of the emulator's `GET /models`, in Kimi's field names. */
export interface EmulatorModel {
  readonly id: string
  readonly display_name: string
  readonly context_length: number
  readonly supports_reasoning: boolean
  /** `both`: thinking can be switched; `only`: it always thinks; `no`: never. */
  readonly supports_thinking_type: "both" | "only" | "no"
  readonly think_efforts?: {
    readonly support: boolean
    readonly valid_efforts: ReadonlyArray<string>
    readonly default_effort: string
  }
  readonly supports_image_in: boolean
  readonly supports_video_in: boolean
  readonly supports_tool_use: boolean
}

const EFFORTS = { support: true, valid_efforts: ["low", "high", "max"], default_effort: "high" } as const

/**
 * The account-only model: listed by `GET /models`, absent from OpenCode's
 * catalog. Its id sorts below the catalog's `kimi-for-coding…`: OpenCode
 * 1.18.33 preselects a provider's model by id, descending (`Provider.sort`),
 * and an emulator-only model must never be the one a TUI starts on.
 */
export const ACCOUNT_ONLY_MODEL_ID = "kimi-emulator-thinking"

/** Every model the emulator lists and accepts, in list order. */
export const MODELS: ReadonlyArray<EmulatorModel> = [
  {
    id: "kimi-for-coding",
    display_name: "Kimi For Coding",
    context_length: 1_048_576,
    supports_reasoning: true,
    supports_thinking_type: "both",
    think_efforts: EFFORTS,
    supports_image_in: true,
    supports_video_in: true,
    supports_tool_use: true
  },
  {
    id: "kimi-for-coding-highspeed",
    display_name: "Kimi For Coding HighSpeed",
    context_length: 262_144,
    supports_reasoning: true,
    supports_thinking_type: "both",
    supports_image_in: true,
    supports_video_in: true,
    supports_tool_use: true
  },
  {
    id: "k3",
    display_name: "Kimi K3",
    context_length: 1_048_576,
    supports_reasoning: true,
    supports_thinking_type: "both",
    think_efforts: EFFORTS,
    supports_image_in: true,
    supports_video_in: true,
    supports_tool_use: true
  },
  {
    id: "k3-256k",
    display_name: "Kimi K3-256K",
    context_length: 262_144,
    supports_reasoning: true,
    supports_thinking_type: "both",
    think_efforts: EFFORTS,
    supports_image_in: true,
    supports_video_in: false,
    supports_tool_use: true
  },
  {
    id: ACCOUNT_ONLY_MODEL_ID,
    display_name: "Kimi K2 Thinking (emulator, account only)",
    context_length: 262_144,
    supports_reasoning: true,
    supports_thinking_type: "only",
    supports_image_in: false,
    supports_video_in: false,
    supports_tool_use: true
  }
]

/** The model with this id, if the emulator serves it. */
export const findModel = (id: unknown): EmulatorModel | undefined =>
  typeof id === "string" ? MODELS.find((m) => m.id === id) : undefined

/** Whether a chat request thinks, and at which effort (as the body asked; `undefined` when none was given). */
export interface ThinkingDecision {
  readonly enabled: boolean
  readonly effort: string | undefined
}

/** Kimi's rule: an id with `thinking` always thinks; else `thinking.type === "enabled"` turns it on. */
export const thinkingOf = (model: string, body: Readonly<Record<string, unknown>>): ThinkingDecision => {
  const thinking = body["thinking"]
  const t = typeof thinking === "object" && thinking !== null ? (thinking as Record<string, unknown>) : {}
  const effort = typeof t["effort"] === "string" ? t["effort"] : undefined
  return { enabled: model.includes("thinking") || t["type"] === "enabled", effort }
}

/** The emulator's reasoning text for a prompt: deterministic, so tests can compare it whole. */
export const reasoningText = (said: string, effort: string | undefined): string =>
  `Thinking${effort === undefined ? "" : ` (effort ${effort})`}: the user said ` +
  `${said === "" ? "nothing" : `"${said}"`}; I will greet them and repeat it.`
