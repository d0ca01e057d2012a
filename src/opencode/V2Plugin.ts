/**
 * The OpenCode 2 plugin: the same Kimi device login and request handling as
 * the V1 plugin (`KimiPlugin.ts`), on OpenCode 2's plugin API
 * (`export default { id, setup }`, test/opencode/NOTES.md, "OpenCode 2.1").
 *
 * What `setup` registers, each only where the host's `ctx` offers it (2.1,
 * 2.0.x and the previews differ, so everything is feature-detected, and a
 * missing piece is a debug line, `DEBUG=opencode-kimi-auth:*`):
 *
 * - `integration.transform`: the device login (`mode: "auto"`, `expiresAt`)
 *   on `kimi-code-plan-cn` and `kimi-code-plan-global`
 *   (`opencode auth login <provider> --method kimi-device`, `/connect`);
 * - `session.hook`: `http.request`, `http.response`, `retry`, and
 *   `model.request` on hosts without rows (2.0.x; `V2Hooks.ts`); on a host
 *   with rows (2.1), once per Kimi provider (`{ providerID }`), so the host
 *   leaves every other provider's calls alone;
 * - `model.transform` (2.0.4 and later) or `catalog.transform` (before): the
 *   `off` variant, and the account's extra models (`V2Models.ts`).
 *
 * One rotation family: OpenCode 2 stores an OAuth credential in its SQLite
 * database and calls the method's `refresh` near expiry (2.1.2: with no
 * single flight, twice at once in one run). The credential it gets from us
 * never holds a refresh token: `refresh` is {@link REFRESH_MARKER}, and our
 * `refresh` asks the package's token store (file + lock) for the current
 * login, so every rotation, in any host or process, goes through the one lock.
 *
 * Nothing here runs at `setup` beyond registering: no core, no request. The
 * core (Effect) is imported on first need: a login, a due token, a `401`, a
 * refused answer.
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { readAccountsSync } from "../light/AccountChoice.js"
import { DEFAULT_TOKEN_FILE_NAME } from "../light/AccountRegistry.js"
import { debugLine } from "../light/Debug.js"
import { type KimiRegion, REGIONS } from "../light/Region.js"
import { readStoredLogin } from "../light/StoredLogin.js"
import { DEVICE_LOGIN_LABEL, type KimiPluginOptions, PLUGIN_ID } from "./KimiPlugin.js"
import type { ApiModel, PluginCore } from "./PluginCore.js"
import { CATALOG_MODELS } from "./ProviderConfig.js"
import { makeFastPath } from "./V2Fast.js"
import { type AccountV2, guarded, makeV2Handlers, type RegionV2, type RowApi } from "./V2Hooks.js"
import { modelsCachePath, modelsStale, readModelsCache, transformModels, writeModelsCache } from "./V2Models.js"
import { loadCore } from "./LoadCore.js"
import { credentialOf, type V2Credential, V2_METHOD_ID } from "./V2PluginDecisions.js"
import { accountMetadata, accountOfCredential, labelOfCredential, rowWithoutLoginMessage } from "./V2Rows.js"

export { REFRESH_MARKER, type V2Credential, V2_METHOD_ID } from "./V2PluginDecisions.js"
export { makeV2Handlers } from "./V2Hooks.js"

type Registration = { readonly dispose?: () => unknown } | undefined
type Register = (f: (draft: any) => void) => Promise<Registration> | Registration
type Hook = (name: string, callback: (event: any) => unknown, options?: { readonly providerID: string }) => Promise<Registration> | Registration

/** The structural subset of OpenCode 2's plugin `ctx` this plugin uses; every member is optional. */
export interface V2Context {
  readonly options?: Readonly<Record<string, unknown>> | undefined
  readonly integration?: {
    readonly transform?: Register
    readonly connection?: {
      readonly active?: (integrationID: string) => Promise<unknown>
      readonly resolve?: (connection: unknown) => Promise<unknown>
    } | undefined
  } | undefined
  readonly catalog?: { readonly transform?: Register } | undefined
  readonly model?: { readonly transform?: Register; readonly reload?: () => unknown } | undefined
  readonly session?: { readonly hook?: Hook } | undefined
}

const debug = (message: string) => debugLine(message)

const loadCoreModule = loadCore

const isRecord = (u: unknown): u is Record<string, any> => typeof u === "object" && u !== null && !Array.isArray(u)

/** One account's fast path and core; `file` undefined: the region's active account. */
const makeAccount = (region: KimiRegion, options: KimiPluginOptions, file: string | undefined): AccountV2 & { dispose: () => Promise<void> } => {
  const providerId = REGIONS[region].providerId
  const base = makeFastPath(options, region)
  const storageDir = base.settings?.storageDir
  // A named account: its own token file (the fast path) and the core pinned to it (its file, lock and family).
  const fast = file === undefined || storageDir === undefined ? base : makeFastPath({ ...options, tokenFilePath: path.join(storageDir, file) }, region)
  const coreOptions = file === undefined ? options : { ...options, account: file }
  let core: Promise<PluginCore> | undefined
  let ready: PluginCore | undefined
  return {
    file,
    fast,
    present: () => file === undefined || storageDir === undefined || accountPresent(storageDir, file),
    getCore: () =>
      ready !== undefined ? Promise.resolve(ready) : (core ??= loadCoreModule().then((m) => {
        // OpenCode 2 keeps its own credential row; nothing is mirrored into V1's auth.json from here.
        ready = m.makePluginCore({ options: coreOptions, region, providerId, line: "v2" })
        return ready
      })),
    dispose: async () => {
      const c = ready
      core = undefined
      ready = undefined
      await c?.dispose()
    }
  }
}

/** Whether the storage folder has the account (its token file, or the registry lists it). */
const accountPresent = (storageDir: string, file: string): boolean =>
  fs.existsSync(path.join(storageDir, file)) || readAccountsSync(storageDir).accounts.some((a) => a.file === file)

const makeRegion = (region: KimiRegion, options: KimiPluginOptions): RegionV2 => {
  const own = makeAccount(region, options, undefined)
  const accounts = new Map<string, ReturnType<typeof makeAccount>>()
  return {
    ...own,
    region,
    providerId: REGIONS[region].providerId,
    apiBaseUrl: own.fast.settings?.apiBaseUrl,
    thinks: new Set(CATALOG_MODELS),
    account: (file) => {
      if (file === undefined) return own
      let a = accounts.get(file)
      if (a === undefined) accounts.set(file, (a = makeAccount(region, options, file)))
      return a
    },
    dispose: async () => {
      await Promise.all([own, ...accounts.values()].map((a) => a.dispose().catch(() => {})))
      accounts.clear()
    }
  }
}

/** The device login method of one region (`integration.transform`'s `draft.method.update` input). */
export const oauthMethod = (r: RegionV2, onLogin: () => void = () => {}) => ({
  integrationID: r.providerId,
  method: { id: V2_METHOD_ID, type: "oauth" as const, label: DEVICE_LOGIN_LABEL },
  authorize: async () => {
    const start = await (await r.getCore()).startLogin()
    const callback = start.callback().then((t) => {
      onLogin()
      // The row names its account (a token file, never a secret) and carries its label.
      const metadata = t.account !== undefined ? accountMetadata({ account: t.account.file, label: t.account.label }) : undefined
      return credentialOf(V2_METHOD_ID, t.access, t.expires, metadata)
    })
    callback.catch(() => {}) // the host awaits it; an abandoned attempt must not be an unhandled rejection
    return { url: start.url, instructions: start.instructions, mode: "auto" as const, expiresAt: start.expiresAt, callback }
  },
  /**
   * Never spends `credential.refresh`: the row's account's store answers, from the file while its login is
   * valid (another process may have refreshed), else through its token manager (under its lock).
   */
  refresh: async (credential: V2Credential): Promise<V2Credential> => {
    const methodID = credential.methodID || V2_METHOD_ID
    // A row that names no account was made before accounts: the default account's (oauth.json).
    const a = r.account(accountOfCredential(credential) ?? DEFAULT_TOKEN_FILE_NAME)
    if (!a.present()) throw new Error(rowWithoutLoginMessage(r.providerId))
    const fast = a.fast.auth(Date.now())
    const expires = fast !== undefined ? storedExpiry(a) : undefined
    if (fast !== undefined && expires !== undefined) return credentialOf(methodID, fast.token, expires, credential.metadata)
    const login = await (await a.getCore()).currentLogin()
    if (!login.ok) throw new Error(login.code === "kimi_login_required" ? rowWithoutLoginMessage(r.providerId) : login.message)
    return credentialOf(methodID, login.access, login.expiresMillis, credential.metadata)
  },
  /** The row's label: the account's name and region ("Kimi Ada (ada@example.com), mainland-cn"). */
  label: (credential: V2Credential): string | undefined => labelOfCredential(credential)
})

/** The stored login's expiry (epoch ms), read with the fast path's rules; `undefined` when the core must answer. */
const storedExpiry = (r: AccountV2): number | undefined => {
  const settings = r.fast.settings
  const login = settings !== undefined ? readStoredLogin(settings, Date.now(), 300) : undefined
  return login !== undefined && login.expiresAt > 0 ? login.expiresAt * 1000 : undefined
}

const tryRegister = async (what: string, f: () => Promise<Registration> | Registration): Promise<Registration> => {
  try {
    return await f()
  } catch (e) {
    debug(`${what} could not be registered (${e instanceof Error ? e.message : String(e)})`)
    return undefined
  }
}

/** The account's models of each region, from the cache files, and how to read them again. */
const makeAccountModels = (regions: ReadonlyArray<RegionV2>, onChange: () => void) => {
  const lists = new Map<string, ReadonlyArray<ApiModel>>()
  const cacheOf = (r: RegionV2) => r.fast.settings !== undefined ? modelsCachePath(r.fast.settings.storageDir, r.providerId) : undefined
  const apply = (r: RegionV2, models: ReadonlyArray<ApiModel>) => {
    for (const m of models) if (m.reasoning) r.thinks.add(m.id)
    lists.set(r.providerId, models)
  }
  for (const r of regions) {
    const file = cacheOf(r)
    const cached = file !== undefined ? readModelsCache(file) : undefined
    apply(r, cached?.models ?? [])
  }
  const inFlight = new Set<string>()
  const store = (r: RegionV2, models: ReadonlyArray<ApiModel>) => {
    const file = cacheOf(r)
    if (file !== undefined) writeModelsCache(file, models, Date.now())
    const before = JSON.stringify(lists.get(r.providerId) ?? [])
    apply(r, models)
    if (JSON.stringify(models) !== before) onChange()
  }
  /** After a request went through: read the list again, with the core, when the cache is stale (at most every 6 hours). */
  const afterAnswer = (r: RegionV2) => {
    const file = cacheOf(r)
    if (r.apiBaseUrl === undefined || file === undefined || inFlight.has(r.providerId)) return
    if (!modelsStale(readModelsCache(file), Date.now())) return
    inFlight.add(r.providerId)
    void afterLogin(r).finally(() => inFlight.delete(r.providerId))
  }
  /** After a login through the host: read the list with the core (it is loaded). */
  const afterLogin = async (r: RegionV2) => {
    if (r.apiBaseUrl === undefined) return
    try {
      const models = await (await r.getCore()).listModels(r.apiBaseUrl, 5000)
      if (models.length > 0) store(r, models)
    } catch {
      // the cached list stays
    }
  }
  return { lists, afterAnswer, afterLogin }
}

/** Registers the model changes through what the host offers; the registrations still pending at setup's end. */
const registerModels = async (ctx: V2Context, lists: ReadonlyMap<string, ReadonlyArray<ApiModel>>): Promise<{ done?: Registration; pending?: Promise<Registration> }> => {
  const model = ctx.model?.transform
  if (typeof model === "function") {
    return { done: await tryRegister("the model changes", () => model.call(ctx.model, (draft: any) => transformModels(draft, lists))) }
  }
  const catalog = ctx.catalog?.transform
  if (typeof catalog === "function") {
    // Not awaited: in the 2.0 preview a catalog transform registered during `setup` settles only after
    // the plugins have loaded (awaiting it here hangs the host's start).
    return { pending: tryRegister("the catalog changes", () => catalog.call(ctx.catalog, (draft: any) => transformModels(draft?.model, lists))) }
  }
  debug("this OpenCode offers neither model.transform nor catalog.transform: no `off` variant and no extra account models")
  return {}
}

const registerHooks = async (ctx: V2Context, regions: ReadonlyArray<RegionV2>, onAnswered: Parameters<typeof makeV2Handlers>[2]): Promise<Array<Registration>> => {
  const hook = ctx.session?.hook
  if (typeof hook !== "function") {
    debug(
      "this OpenCode offers no session.hook: Kimi calls carry the credential's access token only " +
        "(refreshed through the package's store), without the X-Msh identity headers, thinking translation, 401 heal or quota message"
    )
    return []
  }
  const connection = ctx.integration?.connection
  const active = connection?.active
  const resolve = connection?.resolve
  const rows: RowApi | undefined = typeof active === "function"
    ? {
      active: (id) => active.call(connection, id),
      resolve: typeof resolve === "function" ? (c) => resolve.call(connection, c) : undefined
    }
    : undefined
  const h = makeV2Handlers(regions, rows, onAnswered)
  // 2.1 fires a hook registered with `{ providerID }` for that provider only, and takes its own path around
  // a call (the request rebuilt, the answer copied) only for a provider something hooks: with one
  // registration per Kimi provider, calls to the user's other providers cost nothing of ours (NOTES.md, "Cost").
  const scopes = rows === undefined ? [undefined] : regions.map((r) => ({ providerID: r.providerId }))
  const out: Array<Registration> = []
  for (const [name, callback] of [
    ["http.request", h.httpRequest],
    ["http.response", h.httpResponse],
    // A host with rows (2.1) sends the row's bearer over anything `model.request` sets, and our `http.request`
    // sets the identity headers; hooking it there only costs every run (~50 ms of the host's, NOTES.md "Cost").
    ...(rows === undefined ? [["model.request", h.modelRequest] as const] : []),
    ["retry", h.retry]
  ] as const) {
    const safe = guarded(name, callback as (e: any) => unknown, debug)
    for (const scope of scopes) {
      const what = `session.hook("${name}"${scope === undefined ? "" : `, ${scope.providerID}`})`
      out.push(await tryRegister(what, () => scope === undefined ? hook.call(ctx.session, name, safe) : hook.call(ctx.session, name, safe, scope)))
    }
  }
  return out
}

/**
 * OpenCode 2's `setup`: registers what the host offers (see the module
 * comment) and returns the cleanup, which releases every registration, the
 * cores (their runtimes, timers and locks) and the background reads. Never
 * throws into the host.
 */
export const setupV2 = async (ctx: V2Context = {}) => {
  const options = (isRecord(ctx.options) ? ctx.options : {}) as KimiPluginOptions
  const { provider: _provider, region: _region, ...rest } = options
  const regions = (["mainland-cn", "global"] as const).map((region) => makeRegion(region, rest))
  const reload = () => {
    try {
      void Promise.resolve(ctx.model?.reload?.()).catch(() => {})
    } catch {}
  }
  const account = makeAccountModels(regions, reload)
  const registrations: Array<Registration> = []
  const integration = ctx.integration?.transform
  if (typeof integration === "function") {
    registrations.push(await tryRegister("the device login", () =>
      integration.call(ctx.integration, (draft: any) => {
        for (const r of regions) draft.method.update(oauthMethod(r, () => void account.afterLogin(r)))
      })))
  } else {
    debug("this OpenCode offers no integration.transform: no device login in its UI; log in with `kimi-auth login`")
  }
  registrations.push(...await registerHooks(ctx, regions, account.afterAnswer))
  const models = await registerModels(ctx, account.lists)
  registrations.push(models.done)
  return async () => {
    if (models.pending !== undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined
      registrations.push(await Promise.race([models.pending, new Promise<undefined>((r) => (timer = setTimeout(r, 1000, undefined)))]))
      clearTimeout(timer)
    }
    for (const reg of registrations) await Promise.resolve().then(() => reg?.dispose?.()).catch(() => {})
    await Promise.all(regions.map((r) => r.dispose().catch(() => {})))
  }
}

/** The OpenCode 2 plugin definition (`export default`). */
export const pluginV2 = { id: PLUGIN_ID, setup: setupV2 } as const
