/**
 * The OpenCode plugin: Kimi device login on OpenCode's own Kimi providers,
 * and a `fetch` that keeps every Kimi request authorized.
 *
 * One plugin instance serves one catalog provider: `kimi-code-plan-cn`
 * (region `mainland-cn`, logs in at auth.kimi.com) or
 * `kimi-code-plan-global` (region `global`, auth.kimi.ai). OpenCode 1.18.33
 * takes one `auth` hook per instance, so the package's OpenCode entry
 * (`server.ts`) exports one instance per region (test/opencode/NOTES.md,
 * "Serving both Kimi providers").
 *
 * This module is the light half: it imports nothing from `effect`. Start-up
 * (`server()` and the `config` hook) costs a settings check and one small
 * file read; the Effect core (`PluginCore.ts`) is imported the first time a
 * request, a login or the model list needs it.
 *
 * @since 0.1.0
 */
import { DEFAULT_REGION, type KimiRegion, REGIONS } from "../light/Region.js"
import type { KimiAuthOptions } from "../config/KimiAuthConfig.js"
import { type AccountPlainSettings, resolveAccountSettings } from "../light/AccountSettings.js"
import { readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import { carriesOwnKey, readsAccountModels, regionFrom, type StoredLogin, storedLoginOf } from "./KimiPluginDecisions.js"
import type { OAuthEntry, PluginCore } from "./PluginCore.js"
import { CATALOG_MODELS, providerBlock, thinkingModels, withAccountModels, withDisplayNames } from "./ProviderConfig.js"
import { toKimiThinking } from "./Thinking.js"
import { loadCore } from "./LoadCore.js"

/** The plugin's id (OpenCode's plugin-module form). */
export const PLUGIN_ID = "opencode-kimi-auth"

/** The provider id served when the options name no region: OpenCode's `kimi-code-plan-cn`. */
export const DEFAULT_PROVIDER_ID = REGIONS[DEFAULT_REGION].providerId

/** The label of the device login method; `opencode auth login -p kimi-code-plan-cn -m "Kimi device login"`. */
export const DEVICE_LOGIN_LABEL = "Kimi device login"

/** The label of the API-key method beside it. */
export const API_KEY_LABEL = "Kimi API key"

/** The `apiKey` the loader hands the AI SDK for OAuth logins; the fetch replaces it with the real token. */
const OAUTH_PLACEHOLDER = "kimi-oauth"

/** How often a request checks whether the region's active account changed (`kimi-auth switch`). */
const ACCOUNT_CHECK_MS = 2000

/** How long the model list may hold up OpenCode's start. */
const MODELS_BUDGET_MS = 1500

/** Options from `"plugin": [["opencode-kimi-auth", { ... }]]` in `opencode.json` (they reach both regions). */
export interface KimiPluginOptions extends KimiAuthOptions {
  /**
   * For {@link KimiAuthPlugin} alone: the OpenCode provider to serve, one of
   * the catalog ids (`kimi-code-plan-cn`, `kimi-code-plan-global`); `region`
   * does the same. The package's OpenCode entry serves both and ignores it.
   */
  readonly provider?: string | undefined
}

/** The structural subset of OpenCode's plugin input this plugin uses (assignable from `PluginInput`). */
export interface PluginInputLike {
  readonly client?: {
    readonly auth?: {
      set?(args: { path: { id: string }; body: OAuthEntry }): Promise<unknown>
    }
  }
}

/** OpenCode's stored credential for the provider, as `getAuth()` returns it. */
export type OpenCodeAuth =
  | { readonly type: "oauth"; readonly refresh: string; readonly access: string; readonly expires: number }
  | { readonly type: "api"; readonly key: string }
  | { readonly type: string }
  | undefined

/** The loader's answer: the AI SDK provider options. */
export interface LoaderResult {
  readonly apiKey: string
  readonly fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>
  readonly baseURL?: string
}

/** The hooks one instance returns (assignable to `@opencode-ai/plugin`'s `Hooks`). */
export interface KimiHooks {
  readonly config: (config: { provider?: Record<string, unknown> }) => Promise<void>
  readonly auth: {
    readonly provider: string
    readonly loader: (getAuth: () => Promise<OpenCodeAuth>) => Promise<LoaderResult>
    readonly methods: [
      {
        readonly type: "oauth"
        readonly label: string
        readonly authorize: () => Promise<Awaited<ReturnType<PluginCore["startLogin"]>>>
      },
      { readonly type: "api"; readonly label: string }
    ]
  }
  readonly provider: {
    readonly id: string
    readonly models: (provider: { models?: Record<string, unknown> }, ctx?: { auth?: unknown }) => Promise<Record<string, any>>
  }
  readonly dispose: () => Promise<void>
}

/** The core module, imported once per process on first need. */
const loadCoreModule = loadCore

/** What the token file says, read cheaply (no Effect): see {@link storedLoginOf}. */
const readStoredLogin = (tokenFilePath: string): StoredLogin => {
  try {
    // Capped and non-blocking: a FIFO or a huge file at the path must not hang or bloat the host.
    return storedLoginOf(readSmallFileSync(tokenFilePath, TOKEN_FILE_LIMIT_BYTES))
  } catch {
    return { kind: "none" }
  }
}

/** One instance's state: its provider and settings, the core (loaded on first need), the models that think. */
interface Instance {
  readonly region: KimiRegion
  readonly providerId: string
  readonly options: KimiAuthOptions
  readonly input: PluginInputLike
  /** The region's active account's settings (`accounts.json`): its token file is the one this provider serves. */
  settings: AccountPlainSettings | undefined
  readonly pinnedBase: string | undefined
  /** Models that think unless told otherwise: the catalog's, then what OpenCode and /models report. */
  readonly thinking: Set<string>
  core: Promise<PluginCore> | undefined
  coreReady: PluginCore | undefined
  /** OpenCode's stored OAuth login, found by the loader, adopted before the first request. */
  pendingAdoption: OAuthEntry | undefined
  /** Cores of accounts switched away from: disposed with the plugin (a request may still be running on one). */
  readonly retired: Array<PluginCore>
  readonly follower: ReturnType<typeof accountFollower<AccountPlainSettings>>
}

/**
 * Follows a region's active account (a `kimi-auth switch`, or a login of
 * another user): `check()` chooses the account again at most every
 * {@link ACCOUNT_CHECK_MS} (one clock read otherwise) and answers the new
 * settings when the token file changed; `soon()` makes the next check run
 * at once.
 */
export const accountFollower = <S extends { readonly tokenFilePath: string }>(
  choose: () => { readonly ok: true; readonly value: S } | { readonly ok: false },
  first: S | undefined,
  now: () => number = Date.now
) => {
  let current = first
  let checkedAt = now()
  return {
    check: (): S | undefined => {
      const t = now()
      if (t - checkedAt < ACCOUNT_CHECK_MS || current === undefined) return undefined
      checkedAt = t
      const again = choose()
      if (!again.ok || again.value.tokenFilePath === current.tokenFilePath) return undefined
      current = again.value
      return current
    },
    soon: (): void => {
      checkedAt = Number.NEGATIVE_INFINITY
    }
  }
}

/** A switch of the region's active account: the next request builds a core on the new account's file. */
const followAccount = (inst: Instance): void => {
  const next = inst.follower.check()
  if (next === undefined) return
  inst.settings = next
  if (inst.coreReady !== undefined) inst.retired.push(inst.coreReady)
  inst.core = undefined
  inst.coreReady = undefined
}

const getCore = (inst: Instance): Promise<PluginCore> =>
  (inst.core ??= loadCoreModule().then((m) => {
    const set = inst.input.client?.auth?.set
    inst.coreReady = m.makePluginCore({
      options: inst.options,
      region: inst.region,
      providerId: inst.providerId,
      setAuth: set ? (args) => set.call(inst.input.client?.auth, args) : undefined
    })
    return inst.coreReady
  }))

/**
 * The `fetch` every Kimi request goes through: the thinking switch in
 * Kimi's form, then OAuth. A request that carries a bearer other than our
 * placeholder comes from an API-key login: it keeps its key and gets the
 * identity headers.
 */
const send = (inst: Instance, c: PluginCore, request: RequestInfo | URL, init: RequestInit | undefined): Promise<Response> => {
  let sent = init
  if (typeof init?.body === "string") {
    const body = toKimiThinking(init.body, { thinksByDefault: (model) => inst.thinking.has(model) })
    if (body !== init.body) sent = { ...init, body }
  }
  if (carriesOwnKey(sent?.headers, OAUTH_PLACEHOLDER)) return c.apiKeyFetch(request, sent)
  return c.fetch(request, sent)
}

/** First requests: wait for the core, and adopt OpenCode's stored login first when the loader found one. */
const sendAfterSetup = async (inst: Instance, request: RequestInfo | URL, init: RequestInit | undefined): Promise<Response> => {
  const c = inst.coreReady ?? (await getCore(inst))
  if (inst.pendingAdoption !== undefined) {
    const entry = inst.pendingAdoption
    inst.pendingAdoption = undefined
    await c.adopt(entry).catch(() => {})
  }
  return send(inst, c, request, init)
}

// Not `async`: every request passes here (BENCHMARKS.md, "Request overhead"), and each async layer
// that awaits the response adds microtask turns; the common case hands on the core's promise as is.
const requestFetch = (inst: Instance) => (request: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  followAccount(inst)
  const c = inst.coreReady
  if (c === undefined || inst.pendingAdoption !== undefined) return sendAfterSetup(inst, request, init)
  try {
    return send(inst, c, request, init)
  } catch (e) {
    return Promise.reject(e) // e.g. headers `new Headers` refuses: a rejection, as from any fetch
  }
}

/**
 * The `config` hook: when a login is on disk, puts the request `fetch` into
 * the catalog provider's options (so a `kimi-auth login` alone is enough:
 * OpenCode uses a config `fetch` with no `auth.json` entry) and the `off`
 * variant on the toggle models. Anything the user set in their own block
 * wins. Reads the token file; never builds the runtime, never throws.
 */
const configHook = (inst: Instance, fetch: LoaderResult["fetch"]): KimiHooks["config"] => async (config) => {
  try {
    if (!inst.settings || readStoredLogin(inst.settings.tokenFilePath).kind === "none") return
    config.provider ??= {}
    config.provider[inst.providerId] = providerBlock(config.provider[inst.providerId], fetch, inst.pinnedBase)
  } catch {
    // never break OpenCode's configuration
  }
}

/** The `auth` loader: an API key login keeps its key; an OAuth login in `auth.json` only is adopted on the first request. */
const loader = (inst: Instance, fetch: LoaderResult["fetch"]): KimiHooks["auth"]["loader"] => async (getAuth) => {
  const auth = await getAuth().catch(() => undefined)
  const base = inst.pinnedBase !== undefined ? { baseURL: inst.pinnedBase } : {}
  if (auth && auth.type === "api" && typeof (auth as { key?: unknown }).key === "string") {
    // An API key login: the SDK sends the key; `requestFetch` adds the identity headers and leaves it alone.
    return { apiKey: (auth as { key: string }).key, fetch, ...base }
  }
  // An OAuth login in auth.json only (e.g. a new storage folder): imported on the first request.
  if (auth && auth.type === "oauth") inst.pendingAdoption = auth as OAuthEntry
  return { apiKey: OAUTH_PLACEHOLDER, fetch, ...base }
}

/** OpenCode's catalog models, plus the account's own (`GET /models`) where it lists more. */
const models = (inst: Instance): KimiHooks["provider"]["models"] => async (provider, ctx) => {
  const catalog = (provider?.models ?? {}) as Record<string, unknown>
  for (const id of thinkingModels(catalog)) inst.thinking.add(id)
  try {
    if (!inst.settings) return withDisplayNames(catalog)
    const oauth = (ctx?.auth as { type?: unknown } | undefined)?.type === "oauth"
    if (!readsAccountModels(readStoredLogin(inst.settings.tokenFilePath), oauth, inst.region)) return withDisplayNames(catalog)
    const base = inst.pinnedBase ?? inst.settings.apiBaseUrl
    const account = await (await getCore(inst)).listModels(base, MODELS_BUDGET_MS)
    for (const m of account) if (m.reasoning) inst.thinking.add(m.id)
    return withAccountModels(catalog, account)
  } catch {
    return withDisplayNames(catalog)
  }
}

/** The device login: a login of another Kimi user adds an account and makes it active, followed at once. */
const authorize = async (inst: Instance) => {
  const start = await (await getCore(inst)).startLogin()
  return { ...start, callback: () => start.callback().finally(inst.follower.soon) }
}

/**
 * One plugin instance for one region's catalog provider. `server.ts` binds
 * it to each region; `KimiAuthPlugin` picks the region from its options.
 */
export const regionPlugin = (region: KimiRegion) =>
async (input: PluginInputLike = {}, rawOptions?: Record<string, unknown>): Promise<KimiHooks> => {
  const { provider: _provider, region: _region, ...options } = (rawOptions ?? {}) as KimiPluginOptions
  // The region's active account (`accounts.json`): its token file is the one this provider serves.
  const choose = () => resolveAccountSettings({ ...options, region }, process.env)
  const resolved = choose()
  const settings = resolved.ok ? resolved.value : undefined
  const inst: Instance = {
    region, providerId: REGIONS[region].providerId, options, input, settings,
    pinnedBase: settings?.apiBaseUrlPinned ? settings.apiBaseUrl : undefined,
    thinking: new Set(CATALOG_MODELS),
    core: undefined, coreReady: undefined, pendingAdoption: undefined,
    retired: [], follower: accountFollower(choose, settings)
  }
  const fetch = requestFetch(inst)
  return {
    config: configHook(inst, fetch),
    auth: {
      provider: inst.providerId,
      loader: loader(inst, fetch),
      methods: [
        { type: "oauth", label: DEVICE_LOGIN_LABEL, authorize: () => authorize(inst) },
        { type: "api", label: API_KEY_LABEL }
      ]
    },
    provider: { id: inst.providerId, models: models(inst) },
    dispose: async () => {
      const all = [...inst.retired.splice(0), ...(inst.coreReady === undefined ? [] : [inst.coreReady])]
      inst.core = undefined
      inst.coreReady = undefined
      await Promise.all(all.map((c) => c.dispose()))
    }
  }
}

/**
 * The plugin as one function (OpenCode's `Plugin`): serves the catalog
 * provider named by the `provider` option (or the `region` option), by
 * default `kimi-code-plan-cn`.
 */
export const KimiAuthPlugin = async (input: PluginInputLike = {}, rawOptions?: Record<string, unknown>): Promise<KimiHooks> =>
  regionPlugin(regionFrom((rawOptions ?? {}) as KimiPluginOptions))(input, rawOptions)

/** The OpenCode plugin module form: `export default { id, server }`, one region (see {@link KimiAuthPlugin}). */
export const pluginModule = { id: PLUGIN_ID, server: KimiAuthPlugin } as const
