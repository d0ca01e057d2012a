/**
 * What the plugin adds to OpenCode's own Kimi providers.
 *
 * OpenCode's bundled catalog already defines `kimi-code-plan-cn` and
 * `kimi-code-plan-global` with their models, limits and reasoning variants;
 * the plugin keeps all of that and adds only:
 *
 * - the request `fetch` (and, when an option or the environment pins it, the
 *   API base) in the provider options, under anything the user set there;
 * - an `off` variant (`thinking: { type: "disabled" }`) on the models whose
 *   catalog entry says thinking can be toggled: OpenCode 1.18.33 makes effort
 *   variants only, so without it thinking could not be turned off;
 * - the models the account's `GET /models` lists beyond the catalog's,
 *   through the `provider.models` hook, shaped like the catalog's own;
 * - display names for catalog models the catalog names by their id
 *   (`kimi-for-coding`): the account's name for it, else a known one.
 *
 * Effect-free: the plugin's thin entry uses it at start.
 *
 * @since 0.1.0
 */

/** The model every Kimi For Coding subscription has. */
export const DEFAULT_MODEL_ID = "kimi-for-coding"

/**
 * Models whose catalog entry (opencode 1.18.33) offers a thinking `toggle`
 * beside its efforts. They get the `off` variant.
 */
export const TOGGLE_MODELS: ReadonlyArray<string> = ["kimi-for-coding", "k3"]

/** The variant that turns thinking off, as Kimi reads it. */
export const OFF_VARIANT = { thinking: { type: "disabled" } } as const

/** The catalog's Kimi models (opencode 1.18.33), all of which think. */
export const CATALOG_MODELS: ReadonlyArray<string> = ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k"]

type Rec = Record<string, unknown>
const isRecord = (u: unknown): u is Rec => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The provider block the `config` hook writes for one catalog provider:
 * `own` (the user's block, possibly undefined) with our `fetch` (and
 * `baseURL` when given) under the user's own options, and the `off` variant
 * on the toggle models unless the user defined one.
 */
export const providerBlock = (own: unknown, fetch: unknown, baseURL: string | undefined): Rec => {
  const block: Rec = isRecord(own) ? own : {}
  const options: Rec = isRecord(block["options"]) ? block["options"] : {}
  const models: Rec = isRecord(block["models"]) ? block["models"] : {}
  const withVariants: Rec = { ...models }
  for (const id of TOGGLE_MODELS) {
    const model: Rec = isRecord(models[id]) ? models[id] : {}
    const variants: Rec = isRecord(model["variants"]) ? model["variants"] : {}
    if (variants["off"] !== undefined) continue
    withVariants[id] = { ...model, variants: { ...variants, off: OFF_VARIANT } }
  }
  return {
    ...block,
    options: { ...(baseURL !== undefined ? { baseURL } : {}), fetch, ...options },
    models: withVariants
  }
}

/** One model of the account, as `GET /models` describes it. */
export interface AccountModel {
  readonly id: string
  readonly displayName: string | undefined
  readonly contextLength: number | undefined
  readonly reasoning: boolean
  readonly image: boolean
}

/**
 * The display names of catalog models that OpenCode 1.18.33's catalog names
 * by their bare id (the TUI would show `kimi-for-coding`): Kimi's own names,
 * as its `GET /models` gives them.
 */
export const CATALOG_DISPLAY_NAMES: Readonly<Record<string, string>> = { "kimi-for-coding": "Kimi For Coding" }

/**
 * The catalog with a display name for each model it names by its id (or not
 * at all): the account's name for it when `account` lists one, else
 * {@link CATALOG_DISPLAY_NAMES}. A real name in the catalog is kept. Never throws.
 */
export const withDisplayNames = (catalog: Rec, account: ReadonlyArray<AccountModel> = []): Rec => {
  const out: Rec = { ...catalog }
  for (const [id, model] of Object.entries(catalog)) {
    if (!isRecord(model)) continue
    const name = model["name"]
    if (typeof name === "string" && name !== id && name.trim() !== "") continue
    const better = account.find((m) => m.id === id)?.displayName ?? CATALOG_DISPLAY_NAMES[id]
    if (better !== undefined) out[id] = { ...model, name: better }
  }
  return out
}

/**
 * The `provider.models` answer: the catalog's models (named by
 * {@link withDisplayNames}), plus each
 * account model the catalog lacks, shaped after a catalog model (the default
 * one when present) with its own id, name, context and capabilities, and no
 * variants (its efforts are unknown). Never throws.
 */
export const withAccountModels = (catalog: Rec, account: ReadonlyArray<AccountModel>): Rec => {
  const template = catalog[DEFAULT_MODEL_ID] ?? Object.values(catalog)[0]
  if (!isRecord(template)) return catalog
  const out: Rec = withDisplayNames(catalog, account)
  for (const m of account) {
    if (out[m.id] !== undefined) continue
    const api = isRecord(template["api"]) ? template["api"] : {}
    const limit = isRecord(template["limit"]) ? template["limit"] : {}
    const capabilities = isRecord(template["capabilities"]) ? template["capabilities"] : {}
    const input = isRecord(capabilities["input"]) ? capabilities["input"] : {}
    out[m.id] = {
      ...template,
      id: m.id,
      name: m.displayName ?? m.id,
      api: { ...api, id: m.id },
      limit: { ...limit, ...(m.contextLength !== undefined ? { context: m.contextLength } : {}) },
      capabilities: { ...capabilities, reasoning: m.reasoning, attachment: m.image, input: { ...input, image: m.image } },
      variants: {}
    }
  }
  return out
}

/** The ids of the models in a `provider.models` record that think (`capabilities.reasoning`). */
export const thinkingModels = (models: Rec): Array<string> =>
  Object.entries(models).flatMap(([id, m]) => {
    const caps = isRecord(m) && isRecord(m["capabilities"]) ? m["capabilities"] : undefined
    if (caps?.["reasoning"] !== true) return []
    const api = isRecord(m) && isRecord(m["api"]) && typeof m["api"]["id"] === "string" ? m["api"]["id"] : id
    return api === id ? [id] : [id, api]
  })
