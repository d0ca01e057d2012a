/**
 * The OpenCode provider block for Kimi For Coding, and the model list.
 *
 * The plugin's `config` hook adds this block when the user has not defined
 * the provider: an `@ai-sdk/openai-compatible` provider at the configured API
 * base, with `kimi-for-coding` always present. When logged in, the model list
 * comes from `GET {base}/models`; when that fails, the static list stands.
 *
 * @since 0.1.0
 */

/** One model entry of an OpenCode provider block. */
export interface ModelConfig {
  readonly name: string
  readonly limit: { readonly context: number; readonly output: number }
  readonly tool_call: boolean
  readonly reasoning: boolean
  readonly attachment: boolean
  readonly temperature: boolean
  readonly modalities: { readonly input: Array<"text" | "image">; readonly output: Array<"text"> }
}

/** The provider block. */
export interface ProviderBlock {
  readonly npm: string
  readonly name: string
  readonly options: { readonly baseURL: string }
  readonly models: Record<string, ModelConfig>
}

/** The model every Kimi For Coding subscription has. */
export const DEFAULT_MODEL_ID = "kimi-for-coding"

const model = (name: string, context = 262_144, reasoning = true, image = true): ModelConfig => ({
  name,
  limit: { context, output: 32_768 },
  tool_call: true,
  reasoning,
  attachment: image,
  temperature: true,
  modalities: { input: image ? ["text", "image"] : ["text"], output: ["text"] }
})

/** The static model list, used when the API cannot be asked. */
export const staticModels = (): Record<string, ModelConfig> => ({
  [DEFAULT_MODEL_ID]: model("Kimi For Coding")
})

/** The provider block for an API base and a model list. */
export const providerBlock = (baseURL: string, models: Record<string, ModelConfig> = staticModels()): ProviderBlock => ({
  npm: "@ai-sdk/openai-compatible",
  name: "Kimi For Coding",
  options: { baseURL },
  models: { ...staticModels(), ...models }
})

/**
 * Turns a `GET /models` answer into model entries. Unknown or malformed
 * entries are skipped; never throws.
 */
export const modelsFromApi = (body: unknown): Record<string, ModelConfig> => {
  const out: Record<string, ModelConfig> = {}
  const data = (body as { data?: unknown } | null)?.data
  if (!Array.isArray(data)) return out
  for (const m of data) {
    if (typeof m !== "object" || m === null) continue
    const r = m as Record<string, unknown>
    if (typeof r["id"] !== "string" || r["id"] === "") continue
    const context = typeof r["context_length"] === "number" && r["context_length"] > 0 ? r["context_length"] : 262_144
    out[r["id"]] = model(
      typeof r["display_name"] === "string" && r["display_name"] !== "" ? r["display_name"] : r["id"],
      context,
      r["supports_reasoning"] !== false,
      r["supports_image_in"] === true
    )
  }
  return out
}
