/**
 * The OpenCode 2 plugin: the same Kimi device login and request handling as
 * the V1 plugin (`KimiPlugin.ts`), on OpenCode 2's plugin API
 * (`export default { id, setup }`, test/opencode/NOTES.md, "OpenCode 2").
 *
 * What `setup` registers, each only where the host's `ctx` offers it (the
 * V2 previews and 2.0.x differ, so everything is feature-detected, and a
 * missing piece is a debug line, `DEBUG=opencode-kimi-auth:*`):
 *
 * - `integration.transform`: the device login (`mode: "auto"`, `expiresAt`)
 *   on `kimi-code-plan-cn` and `kimi-code-plan-global`;
 * - `session.hook("http.request")` (the 2.0 preview) and `"model.request"`
 *   (2.0.x): the bearer from the package's token store and the `X-Msh-*`
 *   headers on every Kimi call, and the thinking switch in Kimi's form;
 * - `session.hook("http.response")`: a `401` healed once (one refresh under
 *   the lock, one resend), a quota answer turned into a message with its
 *   reset that the host does not retry, and the login / other-region
 *   messages; `"retry"` (2.0.x) told not to retry a quota answer;
 * - `catalog.transform`: the `off` variant, and the account's extra models.
 *
 * One rotation family: OpenCode 2 stores an OAuth credential in its SQLite
 * database and calls the method's `refresh` near expiry, single-flighted in
 * one process only. The credential it gets from us never holds a refresh
 * token: `refresh` is {@link REFRESH_MARKER}, and our `refresh` asks the
 * package's token manager (file + lock) for the current login, so every
 * rotation, in any host or process, goes through the one lock.
 *
 * Effect-free: the core (`PluginCore.ts`) is imported on first need.
 *
 * @since 0.3.0
 */
import { debugLine } from "../light/Debug.js"
import { lazyModule } from "../light/LazyModule.js"
import { type KimiRegion, REGIONS } from "../light/Region.js"
import { resolveSettings } from "../light/ResolveSettings.js"
import { DEVICE_LOGIN_LABEL, type KimiPluginOptions, PLUGIN_ID } from "./KimiPlugin.js"
import type { PluginCore } from "./PluginCore.js"
import { CATALOG_MODELS, OFF_VARIANT, TOGGLE_MODELS } from "./ProviderConfig.js"
import { credentialOf, errorResponse, isQuotaFailure, type Sent, type V2Credential, V2_METHOD_ID } from "./V2PluginDecisions.js"
import { toKimiThinking } from "./Thinking.js"

export { REFRESH_MARKER, type V2Credential, V2_METHOD_ID } from "./V2PluginDecisions.js"

type Registration = { readonly dispose?: () => unknown } | undefined
type Hook = (name: string, callback: (event: any) => unknown) => Promise<Registration> | Registration

/** The structural subset of OpenCode 2's plugin `ctx` this plugin uses; every member is optional. */
export interface V2Context {
  readonly options?: Readonly<Record<string, unknown>> | undefined
  readonly integration?: { readonly transform?: (f: (draft: any) => void) => Promise<Registration> | Registration } | undefined
  readonly catalog?: { readonly transform?: (f: (draft: any) => void) => Promise<Registration> | Registration } | undefined
  readonly session?: { readonly hook?: Hook } | undefined
}

const debug = (message: string) => debugLine(message)

/** The core module, imported once per process on first need. */
const loadCoreModule = lazyModule(() => import("./PluginCore.js"))

const isRecord = (u: unknown): u is Record<string, any> => typeof u === "object" && u !== null && !Array.isArray(u)

/** What one region's provider does in OpenCode 2. */
interface RegionV2 {
  readonly region: KimiRegion
  readonly providerId: string
  readonly apiBaseUrl: string | undefined
  readonly getCore: () => Promise<PluginCore>
  readonly thinks: Set<string>
  readonly dispose: () => Promise<void>
}

const makeRegion = (region: KimiRegion, options: KimiPluginOptions): RegionV2 => {
  const providerId = REGIONS[region].providerId
  const resolved = resolveSettings({ ...options, region }, process.env)
  let core: Promise<PluginCore> | undefined
  let ready: PluginCore | undefined
  return {
    region,
    providerId,
    apiBaseUrl: resolved.ok ? resolved.value.apiBaseUrl : undefined,
    thinks: new Set(CATALOG_MODELS),
    getCore: () =>
      ready !== undefined ? Promise.resolve(ready) : (core ??= loadCoreModule().then((m) => {
        // OpenCode 2 keeps its own credential row; nothing is mirrored into V1's auth.json from here.
        ready = m.makePluginCore({ options, region, providerId, line: "v2" })
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

/** The device login method of one region (`integration.transform`'s `draft.method.update` input). */
export const oauthMethod = (r: RegionV2, onLogin: () => void = () => {}) => ({
  integrationID: r.providerId,
  method: { id: V2_METHOD_ID, type: "oauth" as const, label: DEVICE_LOGIN_LABEL },
  authorize: async () => {
    const start = await (await r.getCore()).startLogin()
    const callback = start.callback().then((t) => {
      onLogin()
      return credentialOf(V2_METHOD_ID, t.access, t.expires)
    })
    callback.catch(() => {}) // the host awaits it; an abandoned attempt must not be an unhandled rejection
    return { url: start.url, instructions: start.instructions, mode: "auto" as const, expiresAt: start.expiresAt, callback }
  },
  /** Never spends `credential.refresh`: the package's token manager refreshes (under its lock) when due. */
  refresh: async (credential: V2Credential): Promise<V2Credential> => {
    const login = await (await r.getCore()).currentLogin()
    if (!login.ok) throw new Error(login.message)
    return credentialOf(credential.methodID || V2_METHOD_ID, login.access, login.expiresMillis, credential.metadata)
  }
})

/** What `http.response` hands the hook. */
type ResponseEvent = { request: Request; response: Response; model?: unknown }

/** `http.response`: the 401 heal, the quota message, the login and region messages. */
const httpResponse = async (r: RegionV2 | undefined, sent: WeakMap<Request, Sent>, event: ResponseEvent) => {
  if (r === undefined) return
  const record = sent.get(event.request)
  if (record === undefined) return
  const status = event.response.status
  if (status === 401) {
    await event.response.body?.cancel().catch(() => {})
    event.response = "token" in record
      ? await (await r.getCore()).resendAfterRejection(event.request, record.token)
      : errorResponse(record.failure.status, record.failure.code, record.failure.message)
    if (event.response.status === 403 || event.response.status === 429) {
      event.response = await (await r.getCore()).judgeRefusal(event.response)
    }
    return
  }
  if ("failure" in record && record.failure.code !== "kimi_login_required") {
    await event.response.body?.cancel().catch(() => {})
    event.response = errorResponse(record.failure.status, record.failure.code, record.failure.message)
    return
  }
  // Any error answer: the quota message, and the sent token scrubbed from what OpenCode prints.
  if (status >= 400) event.response = await (await r.getCore()).judgeRefusal(event.response, "token" in record ? record.token : undefined)
}

/** Everything the hooks need, for both regions. */
export const makeV2Handlers = (regions: ReadonlyArray<RegionV2>) => {
  const byProvider = new Map(regions.map((r) => [r.providerId, r]))
  const sent = new WeakMap<Request, Sent>()
  const regionOf = (event: any): RegionV2 | undefined => {
    const id = event?.model?.providerID ?? event?.providerID ?? event?.model?.provider
    return typeof id === "string" ? byProvider.get(id) : undefined
  }

  /** `http.request`: thinking in Kimi's form, our bearer and identity headers. */
  const httpRequest = async (event: { request: Request; model?: unknown }) => {
    const r = regionOf(event)
    if (r === undefined || !(event.request instanceof Request)) return
    const request = event.request
    let body: string | undefined
    if (request.body !== null) {
      const text = await request.clone().text()
      body = toKimiThinking(text, { thinksByDefault: (m) => r.thinks.has(m) })
    }
    const core = await r.getCore()
    const [token, identity] = await Promise.all([core.accessToken(), core.identity()])
    const headers = new Headers(request.headers)
    for (const [k, v] of Object.entries(identity)) headers.set(k, v)
    let record: Sent
    if (token.ok) {
      headers.set("authorization", `Bearer ${token.token}`)
      record = { token: token.token }
    } else {
      // Not logged in here: an API-key login keeps its key. Any other failure is told on the answer.
      record = { failure: token }
      if (token.code !== "kimi_login_required") headers.delete("authorization")
    }
    const next = new Request(request.url, {
      method: request.method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: request.signal
    })
    sent.set(next, record)
    event.request = next
  }

  /** `model.request` (2.0.x): mutable `headers` per model call. */
  const modelRequest = async (event: { headers?: unknown; model?: unknown }) => {
    const r = regionOf(event)
    if (r === undefined || !isRecord(event.headers)) return
    const core = await r.getCore()
    const [token, identity] = await Promise.all([core.accessToken(), core.identity()])
    for (const [k, v] of Object.entries(identity)) event.headers[k] = v
    if (token.ok) {
      for (const k of Object.keys(event.headers)) if (k.toLowerCase() === "authorization") delete event.headers[k]
      event.headers["authorization"] = `Bearer ${token.token}`
    }
  }

  /** `retry` (2.0.x): a quota answer is not retried. */
  const retry = (event: Record<string, any>) => {
    if (!isQuotaFailure(event?.error ?? event?.cause ?? "")) return
    if ("retry" in event) event.retry = false
    if ("retryable" in event) event.retryable = false
  }

  return { httpRequest, httpResponse: (event: ResponseEvent) => httpResponse(regionOf(event), sent, event), modelRequest, retry }
}

/** The catalog changes: the `off` variant on the toggle models, and the account's models the catalog lacks. */
const catalogTransform = (regions: ReadonlyArray<RegionV2>, account: Map<string, ReadonlyArray<{ id: string; displayName?: string | undefined; contextLength?: number | undefined }>>) =>
(draft: any) => {
  for (const r of regions) {
    for (const id of TOGGLE_MODELS) {
      const model = draft?.model?.get?.(r.providerId, id)
      if (!isRecord(model)) continue
      const variants = Array.isArray(model["variants"]) ? model["variants"] : []
      if (variants.some((v: any) => v?.id === "off")) continue
      draft.model.update(r.providerId, id, (m: any) => {
        m.variants = [...(Array.isArray(m.variants) ? m.variants : []), { id: "off", body: OFF_VARIANT }]
      })
    }
    const template = draft?.model?.get?.(r.providerId, "kimi-for-coding")
    for (const m of account.get(r.providerId) ?? []) {
      if (!isRecord(template) || draft.model.get(r.providerId, m.id) !== undefined) continue
      draft.model.update(r.providerId, m.id, (x: any) => {
        Object.assign(x, structuredClone(template), { id: m.id, modelID: m.id, name: m.displayName ?? m.id, variants: [] })
        if (m.contextLength !== undefined && isRecord(x.limit)) x.limit.context = m.contextLength
      })
    }
  }
}

const tryRegister = async (what: string, f: () => Promise<Registration> | Registration): Promise<Registration> => {
  try {
    return await f()
  } catch (e) {
    debug(`${what} could not be registered (${e instanceof Error ? e.message : String(e)})`)
    return undefined
  }
}

/**
 * OpenCode 2's `setup`: registers what the host offers (see the module
 * comment) and returns the cleanup. Never throws into the host.
 */
export const setupV2 = async (ctx: V2Context = {}) => {
  const options = (isRecord(ctx.options) ? ctx.options : {}) as KimiPluginOptions
  const { provider: _provider, region: _region, ...rest } = options
  const regions = (["mainland-cn", "global"] as const).map((region) => makeRegion(region, rest))
  const registrations: Array<Registration> = []
  const pending: Array<Promise<Registration>> = []
  const integration = ctx.integration?.transform
  if (typeof integration === "function") {
    registrations.push(await tryRegister("the device login", () =>
      integration.call(ctx.integration, (draft: any) => {
        for (const r of regions) draft.method.update(oauthMethod(r, () => void loadAccountModels()))
      })))
  } else {
    debug("this OpenCode offers no integration.transform: no device login in its UI; log in with `kimi-auth login`")
  }
  const hook = ctx.session?.hook
  if (typeof hook === "function") {
    const h = makeV2Handlers(regions)
    for (const [name, callback] of [
      ["http.request", h.httpRequest],
      ["http.response", h.httpResponse],
      ["model.request", h.modelRequest],
      ["retry", h.retry]
    ] as const) {
      registrations.push(await tryRegister(`session.hook("${name}")`, () => hook.call(ctx.session, name, callback as (e: any) => unknown)))
    }
  } else {
    debug(
      "this OpenCode offers no session.hook: Kimi calls carry the credential's access token only " +
        "(refreshed through the package's store), without the X-Msh identity headers, thinking translation, 401 heal or quota message"
    )
  }
  const account = new Map<string, ReadonlyArray<{ id: string; displayName?: string | undefined; contextLength?: number | undefined }>>()
  const catalog = ctx.catalog?.transform
  /**
   * The account's own models (`GET /models`), in the background (never holding up the start or a
   * login), for a region with a login: at setup, and again after a login through the host.
   */
  const loadAccountModels = async (): Promise<void> => {
    if (typeof catalog !== "function") return
    try {
      // One region after the other, mainland-cn first: a due login may be refreshed here, and a login that
      // names no region (written before regions existed, so kimi.com's) must be refreshed by mainland-cn's
      // core, never by whichever core won a race to the lock (which stamped the login with its own region).
      const found: Array<boolean> = []
      for (const r of regions) {
        if (r.apiBaseUrl === undefined) continue
        const core = await r.getCore()
        const login = await core.currentLogin()
        if (!login.ok) continue
        const models = await core.listModels(r.apiBaseUrl, 5000)
        for (const m of models) if (m.reasoning) r.thinks.add(m.id)
        account.set(r.providerId, models)
        found.push(models.length > 0)
      }
      if (found.some(Boolean)) pending.push(tryRegister("the account's models", () => catalog.call(ctx.catalog, catalogTransform(regions, account))))
    } catch {
      // the catalog's own models stay
    }
  }
  if (typeof catalog === "function") {
    // Not awaited: in the 2.0 preview a catalog transform registered during `setup` settles only after
    // the plugins have loaded (awaiting it here hangs the host's start).
    pending.push(tryRegister("the catalog changes", () => catalog.call(ctx.catalog, catalogTransform(regions, account))))
    void loadAccountModels()
  } else {
    debug("this OpenCode offers no catalog.transform: no `off` variant and no extra account models")
  }
  return async () => {
    for (const p of pending) registrations.push(await Promise.race([p, new Promise<undefined>((r) => setTimeout(r, 1000, undefined))]))
    for (const reg of registrations) await Promise.resolve(reg?.dispose?.()).catch(() => {})
    await Promise.all(regions.map((r) => r.dispose()))
  }
}

/** The OpenCode 2 plugin definition (`export default`). */
export const pluginV2 = { id: PLUGIN_ID, setup: setupV2 } as const
