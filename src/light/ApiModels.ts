/**
 * The account's models as `GET {API base}/models` lists them, read leniently:
 * Effect-free, for the plugins' model lists (V1's `provider` hook, OpenCode
 * 2's model transform and its cache).
 *
 * @since 0.3.0
 */

/** One entry of `GET {base}/models`, as far as the plugin reads it. */
export interface ApiModel {
  readonly id: string
  readonly displayName: string | undefined
  readonly contextLength: number | undefined
  readonly reasoning: boolean
  readonly image: boolean
}

/** Reads a `GET /models` answer leniently: unknown or malformed entries are skipped; never throws. */
export const modelsFromApi = (body: unknown): Array<ApiModel> => {
  const data = (body as { data?: unknown } | null)?.data
  if (!Array.isArray(data)) return []
  const out: Array<ApiModel> = []
  for (const m of data) {
    if (typeof m !== "object" || m === null) continue
    const r = m as Record<string, unknown>
    const id = r["id"]
    if (typeof id !== "string" || id === "") continue
    const context = r["context_length"]
    const name = r["display_name"]
    out.push({
      id,
      displayName: typeof name === "string" && name !== "" ? name : undefined,
      contextLength: typeof context === "number" && Number.isFinite(context) && context > 0 ? context : undefined,
      reasoning: r["supports_reasoning"] !== false,
      image: r["supports_image_in"] === true
    })
  }
  return out
}
