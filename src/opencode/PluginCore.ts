/**
 * The heavy half of the OpenCode plugin: everything that needs the Effect
 * core. `KimiPlugin.ts` imports this module with a dynamic `import()` the
 * first time a request, a login or the model list needs it, so OpenCode's
 * start (import, `server()`, the `config` hook) never loads Effect.
 *
 * One core per provider (region): a managed runtime built on first use and
 * disposed by the `dispose` hook, the project's token store as the source of
 * truth, OpenCode's `auth.json` only mirrored (it has no lock and drops the
 * device id), and a copy of a login the user logged out of is never adopted
 * back (`LogoutMarker`). Nothing here throws into OpenCode: failures become an error
 * `Response` or an `Error` whose message says what to do.
 *
 * @since 0.2.0
 */
import * as Cause from "effect/Cause"
import * as nodeFs from "node:fs"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import { DeviceFlow } from "../oauth/DeviceFlow.js"
import { LOGIN_HINT } from "../Errors.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { isLoggedOut } from "../storage/LogoutMarker.js"
import { type KimiAuthOptions, type KimiAuthSettings, resolve } from "../config/KimiAuthConfig.js"
import { type KimiAuthServices, layerNode } from "../KimiAuth.js"
import { checkCanStoreLogin, storeLogin } from "../storage/LoginStorage.js"
import type { DeviceAuthorization } from "../oauth/OAuthClient.js"
import { type KimiRegion, REGIONS } from "../light/Region.js"
import { isDue, PRESENCE_CHECK_MILLIS, TokenManager } from "../tokens/TokenManager.js"
import { TokenSet } from "../tokens/TokenSet.js"
import { TokenStore } from "../storage/TokenStore.js"
import { readWebTextPrefix } from "../net/HttpBody.js"
import { classifyRefusal, quotaMessage, REFUSAL_BODY_LIMIT } from "../request/Authorize.js"
import { decodeUsage, type KimiUsage } from "../api/Usage.js"
import { ERROR_HEADER, errorResponse, makeKimiFetch, type TokenResult } from "../request/AuthorizingFetch.js"
import { makeManagedTokenSource, type TokenFailure } from "../request/ManagedTokenSource.js"
import { type ApiModel, modelsFromApi } from "../light/ApiModels.js"

export { type ApiModel, modelsFromApi } from "../light/ApiModels.js"

/** What the thin plugin hands its core. */
export interface PluginCoreConfig {
  /** The plugin options (storage, hosts, identity), without `region`. */
  readonly options: KimiAuthOptions
  /** The region this provider serves. */
  readonly region: KimiRegion
  /** The OpenCode provider id (`kimi-code-plan-cn`, `kimi-code-plan-global`). */
  readonly providerId: string
  /** The OpenCode line hosting the plugin, for the login command its messages name (default `"v1"`). */
  readonly line?: OpenCodeLine | undefined
  /** OpenCode's `client.auth.set`, to mirror refreshed tokens into `auth.json`. */
  readonly setAuth?: ((args: { path: { id: string }; body: OAuthEntry }) => unknown) | undefined
}

/** An `auth.json` OAuth entry as OpenCode keeps it. */
export interface OAuthEntry {
  readonly type: "oauth"
  readonly refresh: string
  readonly access: string
  /** Epoch milliseconds. */
  readonly expires: number
}

/** What `authorize()` of the device login method returns to OpenCode. */
export interface DeviceLoginStart {
  readonly url: string
  readonly instructions: string
  readonly method: "auto"
  /** When the device code expires, epoch milliseconds (OpenCode 2's `expiresAt`). */
  readonly expiresAt: number
  readonly callback: () => Promise<{ type: "success"; refresh: string; access: string; expires: number }>
}

/** {@link PluginCore.currentLogin}'s answer. */
export type CurrentLogin =
  | { readonly ok: true; readonly access: string; readonly expiresMillis: number }
  | Extract<TokenResult, { ok: false }>

/** The error code of the quota answer the OpenCode 2 hooks hand on (OpenCode 2 reads it as "quota", never retried). */
export const QUOTA_ERROR_TYPE = "insufficient_quota"


/** The core's services to the thin plugin. */
export interface PluginCore {
  /** The OAuth request fetch: token, identity headers, one refresh and one retry on a 401. */
  readonly fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>
  /** A request that carries its own key (an API-key login): sent with the identity headers added. */
  readonly apiKeyFetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>
  /** Starts the device login; throws an `Error` with the reason. */
  readonly startLogin: () => Promise<DeviceLoginStart>
  /** Imports OpenCode's stored OAuth login into our store when ours is empty. */
  readonly adopt: (entry: OAuthEntry) => Promise<void>
  /** The account's models (`GET {base}/models`), or none; waits at most `budgetMillis`, never throws. */
  readonly listModels: (apiBaseUrl: string, budgetMillis: number) => Promise<ReadonlyArray<ApiModel>>
  /** The current login's access token and its expiry (refreshed under the lock when due), or why there is none. */
  readonly currentLogin: () => Promise<CurrentLogin>
  /** A valid access token for a request (the fast path while it is not due). */
  readonly accessToken: (signal?: AbortSignal) => Promise<TokenResult>
  /** The identity headers (`X-Msh-*`, `User-Agent`) every Kimi request carries. */
  readonly identity: () => Promise<Readonly<Record<string, string>>>
  /**
   * Sends again a request whose token Kimi rejected (`401`), after one forced
   * refresh, and only with a different token; answers the login message when
   * none can be had. For hosts whose hook sees the answer but not the send.
   */
  readonly resendAfterRejection: (request: Request, rejected: string) => Promise<Response>
  /**
   * Reads a `403`/`429` answer: a quota refusal becomes a `403` naming the
   * used-up window and its reset, coded so hosts do not retry it; anything
   * else comes back as it was (its body kept).
   */
  readonly judgeRefusal: (response: Response) => Promise<Response>
  readonly dispose: () => Promise<void>
}

const debugEnabled = () => /(^|,)\s*(\*|opencode-kimi-auth(:\*)?)\s*(,|$)/.test(process.env["DEBUG"] ?? "")

/** Silent inside OpenCode's UI unless `DEBUG=opencode-kimi-auth:*`; then debug logs on stderr. */
const loggingLayer = () =>
  debugEnabled()
    ? Layer.mergeAll(Layer.succeed(Logger.LogToStderr, true), Layer.succeed(References.MinimumLogLevel, "Debug"))
    : Logger.layer([])

const failureOf = (cause: Cause.Cause<unknown>): { readonly _tag: string; readonly message: string } => {
  const e = Cause.findErrorOption(cause)
  if (Option.isSome(e)) {
    const v = e.value as { _tag?: string; message?: string }
    return { _tag: v._tag ?? "Unknown", message: v.message ?? String(v) }
  }
  if (Cause.hasInterruptsOnly(cause)) return { _tag: "Interrupted", message: "The request was cancelled." }
  const d = Cause.squash(cause)
  return { _tag: "Defect", message: d instanceof Error ? d.message : String(d) }
}

/**
 * Which OpenCode hosts the plugin: the 1.18 line (`opencode auth login -p <provider>`) or OpenCode 2
 * (2.1: `opencode auth login <provider> --method kimi-device`, or `/connect` in its TUI).
 */
export type OpenCodeLine = "v1" | "v2"

/** The login command to name inside OpenCode: OpenCode's own first (a plugin user may have no `kimi-auth`). */
export const loginHint = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string => {
  const cli = `\`kimi-auth login${region === "mainland-cn" ? "" : ` --region ${region}`}\``
  // OpenCode 2.1 uses a login only through its own row: `kimi-auth login` alone is not seen there.
  return line === "v2"
    ? `run \`opencode auth login ${providerId} --method kimi-device\` (or, in OpenCode, use \`/connect\`, pick ${REGIONS[region].label} (${providerId}), then "Kimi device login")`
    : `run \`opencode auth login -p ${providerId}\` (or ${cli})`
}

/**
 * Rewrites a core message that names `kimi-auth login` (the CLI's wording,
 * `LOGIN_HINT`) so that OpenCode's own command, with this provider, comes first.
 */
export const openCodeFirst = (message: string, providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string =>
  message
    .split(LOGIN_HINT).join(loginHint(providerId, region, line))
    .replace(/`opencode auth login -p kimi`/g, `\`opencode auth login -p ${providerId}\``)
    .replace(/(?<!or )[Rr]un `kimi-auth login[^`]*`/g, loginHint(providerId, region, line))

/** The message for a login made at the other region. */
export const regionMismatch = (stored: KimiRegion, providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string =>
  `Kimi login is for the other region: you are logged in at ${REGIONS[stored].label} (${stored}), ` +
  `but ${providerId} is ${REGIONS[region].label} (${region}), which would refuse that token. ` +
  `To use ${providerId}, ${loginHint(providerId, region, line)}; or pick ${REGIONS[stored].providerId}'s models.`

/** The plugin's refusal of a login made at the other region (Kimi would refuse its token here), or `undefined`. */
export const otherRegionRefusal = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1") => (tokens: TokenSet): TokenFailure | undefined =>
  tokens.region !== undefined && tokens.region !== region
    ? { ok: false, status: 401, code: "kimi_region_mismatch", message: regionMismatch(tokens.region, providerId, region, line) }
    : undefined

/**
 * The plugin's failure mapping of a token run: an HTTP-ish status and a
 * message for the AI SDK to show, naming OpenCode's login command for this
 * provider.
 */
export const pluginTokenFailure = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1") => (cause: Cause.Cause<unknown>): TokenFailure => {
  const login = loginHint(providerId, region, line)
  const f = failureOf(cause)
  const message = openCodeFirst(f.message, providerId, region, line)
  switch (f._tag) {
    case "NotLoggedInError":
    case "CorruptTokenFileError":
      return { ok: false, status: 401, code: "kimi_login_required", message: `Kimi login required: ${message}` }
    case "NetworkError":
    case "ServerError":
      return { ok: false, status: 503, code: "kimi_auth_unavailable", message: `Could not refresh the Kimi token: ${message}` }
    case "TokenStoreError":
    case "LockTimeoutError":
      return { ok: false, status: 500, code: "kimi_token_storage", message }
    case "ConfigError":
      return { ok: false, status: 500, code: "kimi_config", message }
    default:
      return { ok: false, status: 502, code: "kimi_auth_error", message: `${message} If it persists, ${login}.` }
  }
}

// ---------------------------------------------------------------------------
// Decisions: pure, named, tested directly (test/opencode-unit/PluginCore.decisions.test.ts).

/** The last token set the manager handed out, with its access token read once. */
export interface FastToken {
  readonly tokens: TokenSet
  readonly access: string
}

/**
 * The fast-path serve rule of the request `fetch`: `"serve"` the remembered
 * token without entering the Effect runtime, `"check"` first that a logout
 * elsewhere has not removed it (at most every `PRESENCE_CHECK_MILLIS`), or
 * `"slow"` (none remembered, a cancelled request, or the token is due).
 * Allocates nothing.
 */
export const fastPathRule = (
  fast: FastToken | undefined,
  nowMillis: number,
  windowSeconds: number,
  checkedAtMillis: number,
  aborted: boolean
): "serve" | "check" | "slow" =>
  fast === undefined || aborted || isDue(fast.tokens, nowMillis / 1000, windowSeconds)
    ? "slow"
    : nowMillis - checkedAtMillis < PRESENCE_CHECK_MILLIS
    ? "serve"
    : "check"

/**
 * The logout presence check: a login is still stored unless its token file is
 * gone and `logged-out.json` records it. `loggedOut` is asked only when the
 * file is missing (it reads a file); a failing check counts as stored.
 */
export const stillStoredRule = (fileExists: () => boolean, loggedOut: () => boolean): boolean => {
  try {
    return fileExists() || !loggedOut()
  } catch {
    return true
  }
}

/** Whether an `auth.json` entry carries a login worth adopting (a refresh token and an access token). */
export const isAdoptableEntry = (entry: OAuthEntry): boolean =>
  typeof entry.refresh === "string" && entry.refresh !== "" && typeof entry.access === "string"

/** What adopting OpenCode's stored copy comes to. */
export type AdoptOutcome = "kept" | "logged-out" | "adopted"

/**
 * Whether to adopt OpenCode's stored copy: never over a stored login
 * (`"kept"`), never a login the user logged out of (`"logged-out"`, the
 * logout marker outweighs the copy), else `"adopted"`.
 */
export const adoptRule = (hasStoredLogin: boolean, copyLoggedOut: () => boolean): AdoptOutcome =>
  hasStoredLogin ? "kept" : copyLoggedOut() ? "logged-out" : "adopted"

/** The token set an adopted `auth.json` entry becomes (its expiry in epoch seconds, lifetime from `nowMillis`). */
export const tokenSetFromEntry = (entry: OAuthEntry, region: KimiRegion, nowMillis: number): TokenSet => {
  const expiresAt = Math.floor(entry.expires / 1000)
  return new TokenSet({
    accessToken: Redacted.make(entry.access),
    refreshToken: Redacted.make(entry.refresh),
    tokenType: "Bearer",
    expiresIn: Math.max(0, expiresAt - Math.floor(nowMillis / 1000)),
    scope: "",
    expiresAt,
    region
  })
}

/** The debug line for an adoption's outcome (no token in it). */
export const adoptLogLine = (outcome: AdoptOutcome, providerId: string, storePath: string): string =>
  outcome === "logged-out"
    ? `plugin: OpenCode's stored login for ${providerId} is one the user logged out of; not adopted`
    : outcome === "adopted"
    ? `plugin: adopted OpenCode's stored login for ${providerId} into ${storePath}`
    : `plugin: a login is already stored; OpenCode's copy for ${providerId} is not needed`

/** The mirror-once rule: mirror into OpenCode's auth store only with a host client, and once per access token. */
export const shouldMirror = (access: string, mirrored: string | undefined, canMirror: boolean): boolean =>
  canMirror && access !== mirrored

/** A token set as OpenCode's `auth.json` OAuth entry (expiry in epoch milliseconds). */
export const oauthEntryOf = (tokens: TokenSet): OAuthEntry => ({
  type: "oauth",
  refresh: Redacted.value(tokens.refreshToken),
  access: Redacted.value(tokens.accessToken),
  expires: tokens.expiresAt * 1000
})

/** Whether an answer is a refusal the plugin reads (`403`, `429`); every other answer passes untouched. */
export const isRefusalStatus = (status: number): boolean => status === 403 || status === 429

/** The answer a quota refusal becomes: a `403` with the message, coded so hosts do not retry it. */
export const quotaResponse = (message: string): Response =>
  new Response(JSON.stringify({ error: { message, type: QUOTA_ERROR_TYPE, code: QUOTA_ERROR_TYPE } }), {
    status: 403,
    headers: { "content-type": "application/json", [ERROR_HEADER]: "kimi_quota_exceeded" }
  })

/** The login start mapping: a device authorization as OpenCode's `authorize()` answer, around its `callback`. */
export const loginStartOf = (
  authorization: DeviceAuthorization,
  nowMillis: number,
  callback: DeviceLoginStart["callback"]
): DeviceLoginStart => {
  const minutes = Math.max(1, Math.round(authorization.expiresIn / 60))
  return {
    url: authorization.verificationUriComplete ?? authorization.verificationUri,
    expiresAt: nowMillis + authorization.expiresIn * 1000,
    instructions: `Enter code: ${authorization.userCode} (confirm it matches the page; it expires in ${minutes} min)`,
    method: "auto",
    callback
  }
}

/** The login callback mapping: the stored login's tokens as OpenCode's success answer. */
export const loginSuccessOf = (tokens: TokenSet): Awaited<ReturnType<DeviceLoginStart["callback"]>> => ({
  type: "success",
  refresh: Redacted.value(tokens.refreshToken),
  access: Redacted.value(tokens.accessToken),
  expires: tokens.expiresAt * 1000
})

/** What the api-key fetch adds: the request's own headers, with the identity headers set over them. */
export const withIdentityHeaders = (init: RequestInit | undefined, identity: Readonly<Record<string, string>>): RequestInit => {
  const headers = new Headers(init?.headers)
  for (const [k, v] of Object.entries(identity)) headers.set(k, v)
  return { ...init, headers }
}

/** The message for a rejected token no refresh could replace, naming this provider's login command. */
export const rejectedMessageFor = (login: string): string =>
  `Kimi rejected the access token and no new one could be obtained (a token refreshed moments ago ` +
  `is not refreshed again); check the provider's region and base URL, or log in again: ${login}.`

/** The resend rule: the retry goes out only with a token other than the rejected one. */
export const resendTokenRule = (result: TokenResult, rejected: string, rejectedMessage: string): TokenResult =>
  result.ok && result.token === rejected
    ? { ok: false, status: 401, code: "invalid_authentication_error", message: rejectedMessage }
    : result

// ---------------------------------------------------------------------------
// Effectful pieces over one small shared context.

/** What the core's pieces share: the provider, its settings, the runtime, the token source and the fast path. */
interface CoreContext {
  readonly config: PluginCoreConfig
  readonly providerId: string
  readonly region: KimiRegion
  readonly line: OpenCodeLine
  readonly authOptions: KimiAuthOptions
  readonly settings: KimiAuthSettings | undefined
  readonly configProblem: string | undefined
  readonly windowSeconds: number
  readonly rejectedMessage: string
  readonly run: <A>(effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal) => Promise<Exit.Exit<A, unknown>>
  source: ReturnType<typeof makeManagedTokenSource>
  runtime: ManagedRuntime.ManagedRuntime<KimiAuthServices, unknown> | undefined
  /** Fast path of the request `fetch` (BENCHMARKS.md, "Request overhead"); see {@link fastAccessToken}. */
  fast: FastToken | undefined
  fastCheckedAt: number
  mirrored: string | undefined
  identityHeaders: Readonly<Record<string, string>>
  oauthFetch: Promise<ReturnType<typeof makeKimiFetch>> | undefined
  oauthFetchReady: ReturnType<typeof makeKimiFetch> | undefined
}

const runIn = <A>(ctx: CoreContext, effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal) =>
  (ctx.runtime ??= ManagedRuntime.make(
    layerNode({ ...ctx.authOptions, backgroundRefresh: true }).pipe(Layer.provideMerge(loggingLayer()))
  )).runPromiseExit(effect, signal ? { signal } : undefined).catch((e) => Exit.die(e))

/** The logout presence check on disk (one stat, and a small read only when the file is gone); notes its time. */
const stillStored = (ctx: CoreContext, f: FastToken): boolean => {
  ctx.fastCheckedAt = Date.now()
  const settings = ctx.settings
  return settings === undefined || stillStoredRule(
    () => nodeFs.existsSync(settings.tokenFilePath),
    () => isLoggedOut(settings.storageDir, [f.access, Redacted.value(f.tokens.refreshToken)])
  )
}

/**
 * A token for a request: the last token set the manager handed out, served
 * without entering the Effect runtime while it is not due. Every slow-path
 * success replaces it; a token the server rejected is dropped from it at once,
 * so a refresh that did not finish (a cancelled request) never leaves a
 * rejected token to be served again.
 */
const fastAccessToken = (ctx: CoreContext, signal?: AbortSignal): Promise<TokenResult> => {
  const f = ctx.fast
  const rule = fastPathRule(f, Date.now(), ctx.windowSeconds, ctx.fastCheckedAt, signal?.aborted === true)
  if (rule !== "slow") {
    if (rule === "serve" || stillStored(ctx, f!)) return Promise.resolve({ ok: true, token: f!.access } as const)
    ctx.fast = undefined
  }
  return ctx.source.getAccessToken(signal)
}

const refreshAfterRejection = (ctx: CoreContext, rejected: string, signal?: AbortSignal): Promise<TokenResult> => {
  if (ctx.fast?.access === rejected) ctx.fast = undefined
  return ctx.source.refreshAfterRejection(rejected, signal)
}

/** Mirrors a token set into OpenCode's auth store, best effort, at most once per access token. */
const mirror = (ctx: CoreContext, tokens: TokenSet): void => {
  const setAuth = ctx.config.setAuth
  const access = Redacted.value(tokens.accessToken)
  if (!shouldMirror(access, ctx.mirrored, setAuth !== undefined)) return
  ctx.mirrored = access
  const forget = () => {
    ctx.mirrored = undefined
  }
  try {
    Promise.resolve(setAuth!({ path: { id: ctx.providerId }, body: oauthEntryOf(tokens) })).catch(forget)
  } catch {
    forget() // a synchronous throw from the host's client must not reach the request
  }
}

const makeOAuthFetch = (ctx: CoreContext, getAccessToken: Parameters<typeof makeKimiFetch>[0]["getAccessToken"]) =>
  makeKimiFetch({
    headers: ctx.identityHeaders,
    // The core's "log in again" names OpenCode's command without the provider: name this one.
    rejectedMessage: ctx.rejectedMessage,
    // Only requests below the provider's API base are authorized; a quota refusal reads its /usages.
    ...(ctx.settings ? { apiBaseUrl: ctx.settings.apiBaseUrl } : {}),
    getAccessToken,
    refreshAfterRejection: (rejected, signal) => refreshAfterRejection(ctx, rejected, signal)
  })

const buildOAuthFetch = async (ctx: CoreContext) => {
  const identity = ctx.configProblem ? undefined : await ctx.run(DeviceIdentity.use(Effect.succeed))
  ctx.identityHeaders = identity && Exit.isSuccess(identity) ? identity.value.headers : {}
  return makeOAuthFetch(ctx, (signal) => fastAccessToken(ctx, signal))
}

/** The built OAuth fetch (built once; the identity headers are read with it). */
const readyOAuthFetch = async (ctx: CoreContext) => {
  if (ctx.oauthFetchReady === undefined) ctx.oauthFetchReady = await (ctx.oauthFetch ??= buildOAuthFetch(ctx))
  return ctx.oauthFetchReady
}

const fetchAfterBuild = async (ctx: CoreContext, input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  ctx.oauthFetchReady ??= await (ctx.oauthFetch ??= buildOAuthFetch(ctx))
  return ctx.oauthFetchReady(input, init)
}

const apiKeyFetch = async (ctx: CoreContext, input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  await readyOAuthFetch(ctx)
  return globalThis.fetch(input, withIdentityHeaders(init, ctx.identityHeaders))
}

const adopt = async (ctx: CoreContext, entry: OAuthEntry): Promise<void> => {
  const settings = ctx.settings
  if (ctx.configProblem || !settings) return
  if (!isAdoptableEntry(entry)) return
  await ctx.run(
    Effect.gen(function*() {
      const store = yield* TokenStore
      // Under the lock, so a logout in another process cannot slip between the checks and the save.
      const adopted = yield* store.withLock(Effect.gen(function*() {
        const outcome = adoptRule(
          (yield* store.load) !== undefined,
          // A copy of a login the user logged out of (`kimi-auth logout`) is never brought back; a new login is.
          () => isLoggedOut(settings.storageDir, [entry.refresh, entry.access])
        )
        if (outcome === "adopted") yield* store.save(tokenSetFromEntry(entry, ctx.region, Date.now()))
        return outcome
      }))
      yield* Effect.logDebug(adoptLogLine(adopted, ctx.providerId, store.path))
    })
  )
}

/** The message of a failed run, with OpenCode's login command first. */
const failureMessage = (ctx: CoreContext, cause: Cause.Cause<unknown>): string =>
  openCodeFirst(failureOf(cause).message, ctx.providerId, ctx.region, ctx.line)

const finishLogin = (ctx: CoreContext, authorization: DeviceAuthorization) => async () => {
  const exit = await ctx.run(
    Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const tokens = yield* flow.awaitTokens(authorization)
      yield* storeLogin(tokens)
      return tokens
    })
  )
  if (Exit.isFailure(exit)) {
    await ctx.run(Effect.logWarning(`Kimi login failed: ${failureOf(exit.cause).message}`))
    throw new Error(failureMessage(ctx, exit.cause))
  }
  const tokens = exit.value
  ctx.mirrored = Redacted.value(tokens.accessToken)
  ctx.fast = { tokens, access: ctx.mirrored }
  return loginSuccessOf(tokens)
}

/**
 * The device login method. Failures throw an `Error` whose message says what
 * happened and what to do: OpenCode 1.18.33 prints it as `Failed to authorize:
 * <message>` and exits 1, where `{ type: "failed" }` would print only
 * "Failed to authorize" and exit 0 (test/opencode/NOTES.md).
 */
const startLogin = async (ctx: CoreContext): Promise<DeviceLoginStart> => {
  if (ctx.configProblem) throw new Error(`Kimi login could not start: ${ctx.configProblem}`)
  // Proven storable first: the user must never approve a login that cannot be kept.
  const started = await ctx.run(Effect.andThen(checkCanStoreLogin, Effect.flatMap(DeviceFlow, (f) => f.start)))
  if (Exit.isFailure(started)) throw new Error(`Kimi login could not start: ${failureMessage(ctx, started.cause)}`)
  return loginStartOf(started.value, Date.now(), finishLogin(ctx, started.value))
}

const listModels = async (ctx: CoreContext, apiBaseUrl: string, budgetMillis: number): Promise<ReadonlyArray<ApiModel>> => {
  if (ctx.configProblem) return []
  // The request is not cancelled when the budget runs out: a refresh it started (a 401 on a
  // token we believed valid) finishes and serves the chat requests that follow.
  const request = (async () => {
    const response = await coreFetch(ctx, `${apiBaseUrl}/models`, { headers: { accept: "application/json" } })
    return response.ok ? modelsFromApi(await response.json()) : []
  })().catch(() => [] as Array<ApiModel>)
  let timer: ReturnType<typeof setTimeout> | undefined
  const budget = new Promise<Array<ApiModel>>((resolve) => {
    timer = setTimeout(() => resolve([]), budgetMillis)
  })
  try {
    return await Promise.race([request, budget])
  } finally {
    clearTimeout(timer)
  }
}

const currentLogin = async (ctx: CoreContext): Promise<CurrentLogin> => {
  const r = await ctx.source.getTokens()
  return r.ok ? { ok: true, access: r.access, expiresMillis: r.tokens.expiresAt * 1000 } : r
}

const resendAfterRejection = async (ctx: CoreContext, request: Request, rejected: string): Promise<Response> => {
  await readyOAuthFetch(ctx)
  // The first send of this fetch is the retry: its token comes from the forced refresh.
  const once = makeOAuthFetch(ctx, async (signal) =>
    resendTokenRule(await refreshAfterRejection(ctx, rejected, signal), rejected, ctx.rejectedMessage))
  return once(request)
}

const readUsage = async (ctx: CoreContext): Promise<KimiUsage | undefined> => {
  if (!ctx.settings) return undefined
  try {
    const response = await coreFetch(ctx, `${ctx.settings.apiBaseUrl}/usages`, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(5000) })
    if (!response.ok) return undefined
    const decoded = decodeUsage(await response.json())
    return decoded._tag === "Success" ? decoded.success : undefined
  } catch {
    return undefined
  }
}

const judgeRefusal = async (ctx: CoreContext, response: Response): Promise<Response> => {
  if (!isRefusalStatus(response.status)) return response
  const text = await readWebTextPrefix(response, REFUSAL_BODY_LIMIT).catch(() => "")
  const refusal = classifyRefusal(response.status, text, response.headers.get("retry-after") ?? undefined)
  if (refusal?._tag !== "QuotaExceeded") {
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers })
  }
  return quotaResponse(quotaMessage(refusal, await readUsage(ctx)))
}

// Once built, the core's fetch is handed on as is: every request passes here, and a wrapper that
// awaits the response costs microtask turns (BENCHMARKS.md, "Request overhead").
const coreFetch = (ctx: CoreContext, input: RequestInfo | URL, init?: RequestInit): Promise<Response> =>
  ctx.oauthFetchReady !== undefined ? ctx.oauthFetchReady(input, init) : fetchAfterBuild(ctx, input, init)

const dispose = async (ctx: CoreContext): Promise<void> => {
  const rt = ctx.runtime
  ctx.runtime = undefined
  ctx.fast = undefined
  await rt?.dispose().catch(() => {})
}

/** Builds the core for one provider: its context, its token source, and the pieces wired over them. */
export const makePluginCore = (config: PluginCoreConfig): PluginCore => {
  const { providerId, region } = config
  const line = config.line ?? "v1"
  const authOptions: KimiAuthOptions = { ...config.options, region }
  const settingsExit = Effect.runSyncExit(resolve(authOptions))
  const settings = Exit.isSuccess(settingsExit) ? settingsExit.value : undefined
  const configProblem = Exit.isFailure(settingsExit) ? failureOf(settingsExit.cause).message : undefined
  const ctx: CoreContext = {
    config, providerId, region, line, authOptions, settings, configProblem,
    windowSeconds: settings ? Duration.toSeconds(settings.refreshWindow) : 300,
    rejectedMessage: rejectedMessageFor(loginHint(providerId, region, line)),
    run: (effect, signal) => runIn(ctx, effect, signal),
    source: makeManagedTokenSource({
      run: (effect, signal) => runIn(ctx, effect, signal),
      failure: pluginTokenFailure(providerId, region, line),
      ...(configProblem ? { unavailable: { ok: false, status: 500, code: "kimi_config", message: configProblem } } : {}),
      refuse: otherRegionRefusal(providerId, region, line),
      onTokens: (tokens) => {
        mirror(ctx, tokens)
        ctx.fast = { tokens, access: Redacted.value(tokens.accessToken) }
      }
    }),
    runtime: undefined, fast: undefined, fastCheckedAt: 0, mirrored: undefined,
    identityHeaders: {}, oauthFetch: undefined, oauthFetchReady: undefined
  }
  return {
    fetch: (input, init) => ctx.oauthFetchReady !== undefined ? ctx.oauthFetchReady(input, init) : fetchAfterBuild(ctx, input, init),
    apiKeyFetch: (input, init) => apiKeyFetch(ctx, input, init),
    startLogin: () => startLogin(ctx),
    adopt: (entry) => adopt(ctx, entry),
    listModels: (apiBaseUrl, budgetMillis) => listModels(ctx, apiBaseUrl, budgetMillis),
    currentLogin: () => currentLogin(ctx),
    accessToken: (signal) => fastAccessToken(ctx, signal),
    identity: async () => (await readyOAuthFetch(ctx), ctx.identityHeaders),
    resendAfterRejection: (request, rejected) => resendAfterRejection(ctx, request, rejected),
    judgeRefusal: (response) => judgeRefusal(ctx, response),
    dispose: () => dispose(ctx)
  }
}


export { errorResponse }
