/**
 * The OpenCode 2 session hooks, for both Kimi regions:
 *
 * - `http.request`: which login the call carries ({@link rowUse}: the
 *   package's, the row's own key, or none, refused with a message before
 *   anything is sent); then our bearer (the only hook whose bearer reaches
 *   the wire while a row exists, 2.1.2), the `X-Msh-*` headers, and thinking
 *   in Kimi's form. The token and headers come from the fast path
 *   (`V2Fast.ts`) while the stored login is valid; the core is imported only
 *   when it is not.
 * - `http.response`: a `401` healed once (one refresh under the lock, one
 *   resend), a quota answer turned into a message with its reset, the login
 *   and region messages.
 * - `model.request` (2.0.x): the identity headers and the bearer, on hosts
 *   without rows only (2.1 sends the row's bearer over it; not hooked there).
 * - `retry`: a used-up quota or a login failure is not retried (2.1's
 *   `decision`, the older `retry` / `retryable`).
 *
 * Every handler is guarded: a failure of ours is a debug line, never the
 * host's crash; only a deliberate {@link V2Refusal} stops a call.
 *
 * @since 0.2.0
 */
import { DEFAULT_TOKEN_FILE_NAME } from "../light/AccountRegistry.js"
import type { KimiRegion } from "../light/Region.js"
import type { PluginCore } from "./PluginCore.js"
import { toKimiThinking } from "./Thinking.js"
import type { FastPath } from "./V2Fast.js"
import { errorResponse, type Sent } from "./V2PluginDecisions.js"
import { accountOfCredential, applyRetryDecision, noRowMessage, rowUse, type RowUse, rowWithoutLoginMessage } from "./V2Rows.js"

/** One Kimi account as a region's hooks use it: its fast path and its core (each its own token file and lock). */
export interface AccountV2 {
  /** The token file's bare name; `undefined`: the region's active account (a row that names none). */
  readonly file: string | undefined
  readonly getCore: () => Promise<PluginCore>
  readonly fast: FastPath
  /** Whether this machine's store has the account (false: a row imported from another machine, or a removed account). */
  readonly present: () => boolean
}

/** What the hooks need of one region. */
export interface RegionV2 extends AccountV2 {
  readonly region: KimiRegion
  readonly providerId: string
  readonly apiBaseUrl: string | undefined
  readonly thinks: Set<string>
  /** The account a row names (its token file), or the region's active account. */
  readonly account: (file: string | undefined) => AccountV2
  readonly dispose: () => Promise<void>
}

/** A call the plugin stops on purpose: the host shows the message and sends nothing. */
export class V2Refusal extends Error {
  override readonly name = "V2Refusal"
}

/** The host's row API, when it has one (2.1). */
export interface RowApi {
  readonly active: (integrationID: string) => Promise<unknown>
  /** The row's value (its `metadata` names the account); may run the host's refresh when the row is due. */
  readonly resolve?: ((connection: unknown) => Promise<unknown>) | undefined
}

const isRecord = (u: unknown): u is Record<string, any> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The token and identity for a request on an account's login: the fast path, else the core. */
const packageAuth = async (r: AccountV2): Promise<{ token: Awaited<ReturnType<PluginCore["accessToken"]>>; identity: Readonly<Record<string, string>> }> => {
  const fast = r.fast.auth(Date.now())
  if (fast !== undefined) return { token: { ok: true, token: fast.token }, identity: fast.headers }
  const core = await r.getCore()
  const [token, identity] = await Promise.all([core.accessToken(), core.identity()])
  return { token, identity }
}

const identityOf = async (r: AccountV2): Promise<Readonly<Record<string, string>>> => r.fast.identity() ?? (await (await r.getCore()).identity())

/** What the handlers share. */
interface HookContext {
  readonly regionOf: (event: any) => RegionV2 | undefined
  readonly useOf: (r: RegionV2) => Promise<{ readonly use: RowUse; readonly account: AccountV2 }>
  readonly rows: RowApi | undefined
  readonly sent: WeakMap<Request, Sent>
  readonly identities: WeakMap<Request, Readonly<Record<string, string>>>
  readonly accounts: WeakMap<Request, AccountV2>
  readonly onAnswered: (r: RegionV2, token: string, identity: Readonly<Record<string, string>>) => void
}

/** The bearer for a call on the package's login, or why there is none (a refusal when the host has rows). */
const authorizeHeaders = async (hc: HookContext, r: RegionV2, a: AccountV2, headers: Headers): Promise<{ record: Sent; identity: Readonly<Record<string, string>> }> => {
  if (hc.rows !== undefined && !a.present()) throw new V2Refusal(rowWithoutLoginMessage(r.providerId))
  const { token, identity } = await packageAuth(a)
  if (token.ok) {
    headers.set("authorization", `Bearer ${token.token}`)
    return { record: { token: token.token }, identity }
  }
  if (token.code === "kimi_login_required" && hc.rows !== undefined) throw new V2Refusal(rowWithoutLoginMessage(r.providerId))
  // Not logged in on a host without rows: an API-key login keeps its key. Any other failure is told on the answer.
  if (token.code !== "kimi_login_required") headers.delete("authorization")
  return { record: { failure: token }, identity }
}

/** `http.request`: which login, then thinking in Kimi's form, our bearer and identity headers. */
const httpRequestOf = (hc: HookContext) => async (event: { request: Request; model?: unknown }) => {
  const r = hc.regionOf(event)
  if (r === undefined || !(event.request instanceof Request)) return
  const { use, account } = await hc.useOf(r)
  if (use === "none") throw new V2Refusal(noRowMessage(r.providerId, r.region))
  const request = event.request
  const body = request.body !== null
    ? toKimiThinking(await request.clone().text(), { thinksByDefault: (m) => r.thinks.has(m) })
    : undefined
  const headers = new Headers(request.headers)
  const { record, identity } = use === "own-key"
    ? { record: undefined, identity: await identityOf(r) }
    : await authorizeHeaders(hc, r, account, headers)
  for (const [k, v] of Object.entries(identity)) headers.set(k, v)
  const next = new Request(request.url, { method: request.method, headers, ...(body !== undefined ? { body } : {}), signal: request.signal })
  if (record !== undefined) hc.sent.set(next, record)
  hc.identities.set(next, identity)
  hc.accounts.set(next, account)
  event.request = next
}

/** `http.response`: the 401 heal, the quota message, the login and region messages. */
const httpResponseOf = (hc: HookContext) => async (event: { request: Request; response: Response; model?: unknown }) => {
  const r = hc.regionOf(event)
  if (r === undefined) return
  const record = hc.sent.get(event.request)
  if (record === undefined) return
  const a = hc.accounts.get(event.request) ?? r
  const status = event.response.status
  if (status === 401) {
    await event.response.body?.cancel().catch(() => {})
    event.response = "token" in record
      ? await (await a.getCore()).resendAfterRejection(event.request, record.token)
      : errorResponse(record.failure.status, record.failure.code, record.failure.message)
    if (event.response.status === 403 || event.response.status === 429) {
      event.response = await (await a.getCore()).judgeRefusal(event.response)
    }
    return
  }
  if ("failure" in record && record.failure.code !== "kimi_login_required") {
    await event.response.body?.cancel().catch(() => {})
    event.response = errorResponse(record.failure.status, record.failure.code, record.failure.message)
    return
  }
  // Any error answer: the quota message, and the sent token scrubbed from what OpenCode prints.
  if (status >= 400) event.response = await (await a.getCore()).judgeRefusal(event.response, "token" in record ? record.token : undefined)
  else if (status === 200 && "token" in record) hc.onAnswered(r, record.token, hc.identities.get(event.request) ?? {})
}

/**
 * `model.request` (2.0.x, hosts without rows): mutable `headers` per model call. Not registered on a
 * host with rows (2.1), whose route sends the row's bearer over it, and where `http.request` does this.
 */
const modelRequestOf = (hc: HookContext) => async (event: { headers?: unknown; model?: unknown }) => {
  const r = hc.regionOf(event)
  if (r === undefined || !isRecord(event.headers) || hc.rows !== undefined) return
  const { token, identity } = await packageAuth(r)
  for (const [k, v] of Object.entries(identity)) event.headers[k] = v
  if (token.ok) {
    for (const k of Object.keys(event.headers)) if (k.toLowerCase() === "authorization") delete event.headers[k]
    event.headers["authorization"] = `Bearer ${token.token}`
  }
}

/**
 * The account a row names (its token file, from the row's `metadata`), read once per row id: a row's
 * metadata never changes (our `refresh` keeps it). `undefined` for a row that names none (made before accounts).
 */
const accountOfRow = async (rows: RowApi, active: unknown, known: Map<string, string | undefined>): Promise<string | undefined> => {
  const id = (active as { id?: unknown }).id
  if (typeof id === "string" && known.has(id)) return known.get(id)
  if (rows.resolve === undefined) return undefined
  const file = accountOfCredential(await rows.resolve(active))
  if (typeof id === "string") known.set(id, file)
  return file
}

/** Everything the hooks need, for both regions. `rows`: the host's row API (2.1), when it has one. */
export const makeV2Handlers = (
  regions: ReadonlyArray<RegionV2>,
  rows: RowApi | undefined,
  onAnswered: (r: RegionV2, token: string, identity: Readonly<Record<string, string>>) => void = () => {}
) => {
  const byProvider = new Map(regions.map((r) => [r.providerId, r]))
  const known = new Map<string, string | undefined>()
  const hc: HookContext = {
    regionOf: (event: any) => {
      const id = event?.model?.providerID ?? event?.providerID ?? event?.model?.provider
      return typeof id === "string" ? byProvider.get(id) : undefined
    },
    useOf: async (r) => {
      if (rows === undefined) return { use: "package", account: r }
      try {
        const active = await rows.active(r.providerId)
        const use = rowUse(active, true)
        // A row that names no account was made before accounts: its login is the default account's (oauth.json).
        return { use, account: use === "package" ? r.account((await accountOfRow(rows, active, known)) ?? DEFAULT_TOKEN_FILE_NAME) : r }
      } catch {
        return { use: "package", account: r }
      }
    },
    rows,
    sent: new WeakMap(),
    identities: new WeakMap(),
    accounts: new WeakMap(),
    onAnswered
  }
  /** `retry`: a used-up quota or a login failure is not retried. */
  const retry = (event: Record<string, unknown>) => {
    if (isRecord(event)) applyRetryDecision(event)
  }
  return { httpRequest: httpRequestOf(hc), httpResponse: httpResponseOf(hc), modelRequest: modelRequestOf(hc), retry }
}

/**
 * A handler that never throws into the host: a {@link V2Refusal} is passed on (the host shows its
 * message and sends nothing); anything else is reported to `debug` and the call goes on as the host made it.
 */
export const guarded = <E>(name: string, f: (event: E) => unknown, debug: (message: string) => void) => async (event: E) => {
  try {
    await f(event)
  } catch (e) {
    if (e instanceof V2Refusal) throw e
    debug(`the ${name} hook failed (${e instanceof Error ? e.message : String(e)}); the call goes on as OpenCode made it`)
  }
}
