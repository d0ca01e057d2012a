/**
 * OpenCode 2's model list for the Kimi providers: the `off` variant on the
 * models that think by default, and the account's own models the host's
 * catalog lacks, through whichever transform the host offers
 * (`ctx.model.transform` since 2.0.4, `ctx.catalog.transform` before;
 * feature-detected by the caller).
 *
 * The account's models (`GET {API base}/models`) are kept in a small cache
 * file beside the token file (`models-<provider>.json`), so a host's start
 * reads one file and makes no request; the list is read again from Kimi
 * (through the core, `listModels`) after a login, and after a request went
 * through when the cache is older than {@link MODELS_MAX_AGE_MILLIS}; never
 * during `setup`.
 *
 * @since 0.2.0
 */
import * as path from "node:path"
import type { ApiModel } from "./PluginCore.js"
import { readSmallFileSync, writeSmallFileSync } from "../light/SmallFile.js"
import { OFF_VARIANT, TOGGLE_MODELS } from "./ProviderConfig.js"

/** How long a cached model list is used before it is read again from Kimi. */
export const MODELS_MAX_AGE_MILLIS = 6 * 3600_000

/** A cached list: when it was read, and the models. */
export interface CachedModels {
  readonly at: number
  readonly models: ReadonlyArray<ApiModel>
}

/** The cache file of one provider's account models. */
export const modelsCachePath = (storageDir: string, providerId: string): string => path.join(storageDir, `models-${providerId}.json`)

/** One cached model, checked: an id, and the fields of the right types (others dropped). */
const cachedModel = (u: unknown): ApiModel | undefined => {
  if (typeof u !== "object" || u === null) return undefined
  const m = u as Record<string, unknown>
  if (typeof m["id"] !== "string" || m["id"] === "") return undefined
  const context = m["contextLength"]
  return {
    id: m["id"],
    displayName: typeof m["displayName"] === "string" ? m["displayName"] : undefined,
    contextLength: typeof context === "number" && Number.isFinite(context) && context > 0 ? context : undefined,
    reasoning: m["reasoning"] !== false,
    image: m["image"] === true
  }
}

/** Reads a cache file (the plugin's own format, written by {@link writeModelsCache}); `undefined` when missing or unreadable. Never throws. */
export const readModelsCache = (file: string): CachedModels | undefined => {
  try {
    const found = readSmallFileSync(file, 256 * 1024)
    if (found._tag !== "Text") return undefined
    const json = JSON.parse(found.text) as { at?: unknown; models?: unknown }
    const at = typeof json.at === "number" && Number.isFinite(json.at) ? json.at : 0
    const models = Array.isArray(json.models) ? json.models.flatMap((m) => cachedModel(m) ?? []) : []
    return { at, models }
  } catch {
    return undefined
  }
}

/** Writes a cache file; best effort. */
export const writeModelsCache = (file: string, models: ReadonlyArray<ApiModel>, at: number): void => {
  try {
    writeSmallFileSync(file, JSON.stringify({ at, models }))
  } catch {
    // a cache: the next start reads the list again
  }
}

/** Whether a cached list must be read again from Kimi. */
export const modelsStale = (cached: CachedModels | undefined, nowMillis: number): boolean =>
  cached === undefined || nowMillis - cached.at > MODELS_MAX_AGE_MILLIS || cached.at > nowMillis + 60_000

/** What the transform needs of a model draft (2.1's `model.transform` draft, or the preview's `catalog` draft's `model`). */
export interface ModelDraft {
  readonly get: (providerID: string, modelID: string) => unknown
  readonly update: (providerID: string, modelID: string, f: (model: any) => void) => unknown
}

const isRecord = (u: unknown): u is Record<string, any> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Adds the `off` variant to the toggle models of one provider. */
const addOffVariant = (draft: ModelDraft, providerId: string): void => {
  for (const id of TOGGLE_MODELS) {
    const model = draft.get(providerId, id)
    if (!isRecord(model)) continue
    const variants = Array.isArray(model["variants"]) ? model["variants"] : []
    if (variants.some((v: any) => v?.id === "off")) continue
    draft.update(providerId, id, (m: any) => {
      m.variants = [...(Array.isArray(m.variants) ? m.variants : []), { id: "off", body: OFF_VARIANT }]
    })
  }
}

/** Adds the account's models the host lacks, shaped after `kimi-for-coding`. */
const addAccountModels = (draft: ModelDraft, providerId: string, models: ReadonlyArray<ApiModel>): void => {
  const template = draft.get(providerId, "kimi-for-coding")
  if (!isRecord(template)) return
  for (const m of models) {
    if (draft.get(providerId, m.id) !== undefined) continue
    draft.update(providerId, m.id, (x: any) => {
      Object.assign(x, structuredClone(template), { id: m.id, modelID: m.id, name: m.displayName ?? m.id, variants: [] })
      if (m.contextLength !== undefined && isRecord(x.limit)) x.limit.context = m.contextLength
    })
  }
}

/**
 * The model changes for every provider in `providers` (id → the account's models): the `off`
 * variant, then the account's models. Never throws (a draft that does not look as expected is left alone).
 */
export const transformModels = (draft: unknown, providers: ReadonlyMap<string, ReadonlyArray<ApiModel>>): void => {
  if (!isRecord(draft) || typeof draft["get"] !== "function" || typeof draft["update"] !== "function") return
  const d = draft as unknown as ModelDraft
  for (const [providerId, models] of providers) {
    try {
      addOffVariant(d, providerId)
      addAccountModels(d, providerId, models)
    } catch {
      // the host's own list stays
    }
  }
}
