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
 * `Response` or an `Error` whose message says what to do, in OpenCode's words
 * (the error's hint rendered by `edge/HintWords.ts`). The runtime is the
 * shared edge bootstrap (`edge/Runtime.ts`); the pure decisions live in
 * `PluginCoreDecisions.ts`.
 *
 * @since 0.2.0
 */
import type * as Cause from "effect/Cause"
import * as nodeFs from "node:fs"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { DeviceFlow } from "../oauth/DeviceFlow.js"
import { redactSecrets } from "../Errors.js"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { isLoggedOut } from "../storage/Notes.js"
import { isSpent } from "../storage/SpentRefreshTokens.js"
import {
  adoptLogLine,
  adoptRule,
  isAdoptableEntry,
  newestMovedAside,
  notAdoptedMessage,
  type OAuthEntry,
  supersededByMoved,
  tokenSetFromEntry,
  withAdoptionNote
} from "./Adoption.js"
import { KimiAuthConfig, type KimiAuthOptions, type KimiAuthSettings, resolve } from "../config/KimiAuthConfig.js"
import type { KimiAuthServices } from "../KimiAuth.js"
import { type EdgeRuntime, makeEdgeRuntime } from "../edge/Runtime.js"
import { openCodeLogin } from "../edge/HintWords.js"
import { checkCanStoreLogin } from "../storage/LoginStorage.js"
import { type AccountLoginResult, storeAsAccount } from "../accounts/AccountLogin.js"
import { fetchMe } from "../accounts/Me.js"
import { accountLabel } from "../light/AccountChoice.js"
import { apiBaseFor } from "../request/KimiHttpClient.js"
import { layerFetchHttpClient } from "../KimiAuth.js"
import * as nodePath from "node:path"
import type { DeviceAuthorization } from "../oauth/OAuthClient.js"
import type { KimiRegion } from "../light/Region.js"
import { HeldBackRefreshTokens } from "../tokens/TokenManager.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import { TokenStore } from "../storage/TokenStore.js"
import { readWebTextPrefix } from "../net/HttpBody.js"
import { classifyRefusal, quotaMessage, REFUSAL_BODY_LIMIT } from "../request/Authorize.js"
import type { KimiUsage } from "../api/Usage.js"
import { readUsageWithFetch } from "../api/UsageReader.js"
import { decodeModels } from "../api/Models.js"
import { errorResponse, makeKimiFetch, type TokenResult } from "../request/AuthorizingFetch.js"
import { makeManagedTokenSource } from "../request/ManagedTokenSource.js"
import * as Decisions from "./PluginCoreDecisions.js"

export { type OpenCodeLine, QUOTA_ERROR_TYPE } from "./PluginCoreDecisions.js"

/** What the thin plugin hands its core. */
export interface PluginCoreConfig {
  /** The plugin options (storage, hosts, identity), without `region`. */
  readonly options: KimiAuthOptions
  /** The region this provider serves. */
  readonly region: KimiRegion
  /** The OpenCode provider id (`kimi-code-plan-cn`, `kimi-code-plan-global`). */
  readonly providerId: string
  /** The OpenCode line hosting the plugin, for the login command its messages name (default `"v1"`). */
  readonly line?: Decisions.OpenCodeLine | undefined
  /** OpenCode's `client.auth.set`, to mirror refreshed tokens into `auth.json`. */
  readonly setAuth?: ((args: { path: { id: string }; body: OAuthEntry }) => unknown) | undefined
}

/** The account a device login was stored as: its token file's bare name, and a label a person recognises. */
export interface LoginAccount {
  readonly file: string
  readonly label: string
}

/** What `authorize()` of the device login method returns to OpenCode. */
export interface DeviceLoginStart {
  readonly url: string
  readonly instructions: string
  readonly method: "auto"
  /** When the device code expires, epoch milliseconds (OpenCode 2's `expiresAt`). */
  readonly expiresAt: number
  readonly callback: () => Promise<{ type: "success"; refresh: string; access: string; expires: number; account?: LoginAccount | undefined }>
}

/** {@link PluginCore.currentLogin}'s answer. */
export type CurrentLogin =
  | { readonly ok: true; readonly access: string; readonly expiresMillis: number }
  | Extract<TokenResult, { ok: false }>

/** One entry of `GET {base}/models`, as far as the plugin reads it. */
export interface ApiModel {
  readonly id: string
  readonly displayName: string | undefined
  readonly contextLength: number | undefined
  readonly reasoning: boolean
  readonly image: boolean
}

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
   * else comes back as it was (its body kept). With `sentToken` (the bearer
   * the request carried), any error answer's body is handed back with that
   * token scrubbed in every form a server may echo it.
   */
  readonly judgeRefusal: (response: Response, sentToken?: string) => Promise<Response>
  readonly dispose: () => Promise<void>
}

// ---------------------------------------------------------------------------
// Effectful pieces over one small shared context.

/** Refresh tokens no core of this process sends again (refused, or of an unknown outcome): OpenCode rebuilds cores. */
const processHeldBack = new HeldBackRefreshTokens()

/** What the core's pieces share: the provider, its settings, the runtime, the token source and the fast path. */
interface CoreContext {
  readonly config: PluginCoreConfig
  readonly providerId: string
  readonly region: KimiRegion
  readonly line: Decisions.OpenCodeLine
  readonly authOptions: KimiAuthOptions
  readonly settings: KimiAuthSettings | undefined
  readonly configProblem: string | undefined
  readonly windowSeconds: number
  readonly rejectedMessage: string
  readonly run: <A>(effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal) => Promise<Exit.Exit<A, unknown>>
  source: ReturnType<typeof makeManagedTokenSource>
  /** The edge runtime (`src/edge/Runtime.ts`): silent unless `DEBUG`, with the background refresher. */
  readonly runtime: EdgeRuntime
  /** Fast path of the request `fetch` (BENCHMARKS.md, "Request overhead"); see {@link fastAccessToken}. */
  fast: Decisions.FastToken | undefined
  fastCheckedAt: number
  mirrored: string | undefined
  identityHeaders: Readonly<Record<string, string>>
  oauthFetch: Promise<ReturnType<typeof makeKimiFetch>> | undefined
  oauthFetchReady: ReturnType<typeof makeKimiFetch> | undefined
  /** Why OpenCode's copy of the login was not adopted (it may be spent), told with every "login required". */
  notAdopted: string | undefined
}

/** The logout presence check on disk (one stat, and a small read only when the file is gone); notes its time. */
const stillStored = (ctx: CoreContext, f: Decisions.FastToken): boolean => {
  ctx.fastCheckedAt = Date.now()
  const settings = ctx.settings
  return settings === undefined || Decisions.stillStoredRule(
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
  const rule = Decisions.fastPathRule(f, Date.now(), ctx.windowSeconds, ctx.fastCheckedAt, signal?.aborted === true)
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
  if (!Decisions.shouldMirror(access, ctx.mirrored, setAuth !== undefined)) return
  ctx.mirrored = access
  const forget = () => {
    ctx.mirrored = undefined
  }
  try {
    Promise.resolve(setAuth!({ path: { id: ctx.providerId }, body: Decisions.oauthEntryOf(tokens) })).catch(forget)
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
  return globalThis.fetch(input, Decisions.withIdentityHeaders(init, ctx.identityHeaders))
}

const adopt = async (ctx: CoreContext, entry: OAuthEntry): Promise<void> => {
  const settings = ctx.settings
  if (ctx.configProblem || !settings) return
  if (!isAdoptableEntry(entry)) return
  const file = settings.tokenFilePath
  let moved: ReturnType<typeof newestMovedAside>
  await ctx.run(
    Effect.gen(function*() {
      const store = yield* TokenStore
      // Under the lock, so a logout or a refresh in another process cannot slip between the checks and the save.
      const adopted = yield* store.withLock(Effect.gen(function*() {
        const outcome = adoptRule(
          (yield* store.load) !== undefined,
          // A copy of a login the user logged out of (`kimi-auth logout`) is never brought back; a new login is.
          () => isLoggedOut(settings.storageDir, [entry.refresh, entry.access]),
          // Nor one whose refresh token was spent: refreshing it would be a replay, and Kimi revokes the login.
          () => isSpent(file, [entry.refresh]),
          () => supersededByMoved(entry.expires, (moved = newestMovedAside(file))?.mtimeMillis)
        )
        if (outcome === "adopted") yield* store.save(tokenSetFromEntry(entry, ctx.region, Date.now()))
        return outcome
      }))
      ctx.notAdopted = notAdoptedMessage(adopted, ctx.providerId, openCodeLogin(ctx.providerId, ctx.region, ctx.line), {
        tokenFilePath: file,
        movedAside: moved?.path
      })
      yield* Effect.logDebug(adoptLogLine(adopted, ctx.providerId, store.path))
    })
  )
}

/** The message of a failed run, with OpenCode's login command first. */
const failureMessage = (ctx: CoreContext, cause: Cause.Cause<unknown>): string =>
  Decisions.openCodeMessage(Decisions.failureOf(cause), ctx.providerId, ctx.region, ctx.line)

const finishLogin = (ctx: CoreContext, authorization: DeviceAuthorization) => async () => {
  const exit = await ctx.run(
    Effect.gen(function*() {
      const flow = yield* DeviceFlow
      const tokens = yield* flow.awaitTokens(authorization)
      // The same Kimi user replaces their account's login; another user adds an account (its own file),
      // which becomes the region's active account: the thin half follows it on the next request.
      const stored = yield* storeAsAccount(tokens)
      const account = yield* loginAccountOf(stored, tokens)
      return { tokens, account, here: stored.tokenFilePath === (yield* KimiAuthConfig).tokenFilePath }
    })
  )
  if (Exit.isFailure(exit)) {
    await ctx.run(Effect.logWarning(`Kimi login failed: ${Decisions.failureOf(exit.cause).message}`))
    throw new Error(failureMessage(ctx, exit.cause))
  }
  const { here, tokens, account } = exit.value
  ctx.notAdopted = undefined
  if (here) {
    ctx.mirrored = Redacted.value(tokens.accessToken)
    ctx.fast = { tokens, access: ctx.mirrored }
  }
  return { ...Decisions.loginSuccessOf(tokens), account }
}

/**
 * The account a login was stored as, with its label: the registry's record, or (the first login of a
 * storage folder, which names no account) who `/me` says it is; "default account" when Kimi cannot say.
 */
const loginAccountOf = (stored: AccountLoginResult, tokens: TokenSet) =>
  Effect.gen(function*() {
    const file = nodePath.basename(stored.tokenFilePath)
    const region = tokens.region ?? (yield* KimiAuthConfig).region
    if (stored.account !== undefined) return { file, label: accountLabel({ ...stored.account }) }
    const settings = yield* KimiAuthConfig
    const user = yield* fetchMe(apiBaseFor(settings, tokens), tokens.accessToken).pipe(
      Effect.provide(layerFetchHttpClient),
      Effect.orElseSucceed(() => undefined)
    )
    return { file, label: accountLabel({ userId: user?.userId, nickname: user?.nickname, email: user?.email, region }) }
  })

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
  return Decisions.loginStartOf(started.value, Date.now(), finishLogin(ctx, started.value))
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
    Decisions.resendTokenRule(await refreshAfterRejection(ctx, rejected, signal), rejected, ctx.rejectedMessage))
  return once(request)
}

// The core's fetch authorizes the read; the reader bounds it and never throws.
const readUsage = async (ctx: CoreContext): Promise<KimiUsage | undefined> =>
  ctx.settings ? readUsageWithFetch((url, init) => coreFetch(ctx, url, init), ctx.settings.apiBaseUrl) : undefined

const judgeRefusal = async (ctx: CoreContext, response: Response, sentToken?: string): Promise<Response> => {
  if (!Decisions.isRefusalStatus(response.status) && (sentToken === undefined || response.status < 400)) return response
  const read = await readWebTextPrefix(response, REFUSAL_BODY_LIMIT).catch(() => "")
  const text = sentToken === undefined ? read : redactSecrets(read, [sentToken])
  const refusal = classifyRefusal(response.status, text, response.headers.get("retry-after") ?? undefined)
  if (refusal?._tag !== "QuotaExceeded") {
    return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers })
  }
  return Decisions.quotaResponse(quotaMessage(refusal, await readUsage(ctx)))
}

// Once built, the core's fetch is handed on as is: every request passes here, and a wrapper that
// awaits the response costs microtask turns (BENCHMARKS.md, "Request overhead").
const coreFetch = (ctx: CoreContext, input: RequestInfo | URL, init?: RequestInit): Promise<Response> =>
  ctx.oauthFetchReady !== undefined ? ctx.oauthFetchReady(input, init) : fetchAfterBuild(ctx, input, init)

const dispose = async (ctx: CoreContext): Promise<void> => {
  ctx.fast = undefined
  await ctx.runtime.dispose()
}

/** Builds the core for one provider: its context, its token source, and the pieces wired over them. */
export const makePluginCore = (config: PluginCoreConfig): PluginCore => {
  const { providerId, region } = config
  const line = config.line ?? "v1"
  const authOptions: KimiAuthOptions = { ...config.options, region }
  const settingsExit = Effect.runSyncExit(resolve(authOptions))
  const runtime = makeEdgeRuntime(
    { ...authOptions, backgroundRefresh: true, tokenManager: { heldBackRefreshTokens: processHeldBack } },
    "silent"
  )
  const settings = Exit.isSuccess(settingsExit) ? settingsExit.value : undefined
  const configProblem = Exit.isFailure(settingsExit) ? Decisions.failureOf(settingsExit.cause).message : undefined
  const ctx: CoreContext = {
    config, providerId, region, line, authOptions, settings, configProblem,
    windowSeconds: settings ? Duration.toSeconds(settings.refreshWindow) : 300,
    rejectedMessage: Decisions.rejectedMessageFor(openCodeLogin(providerId, region, line)),
    run: runtime.run,
    source: makeManagedTokenSource({
      run: runtime.run,
      failure: (cause) => withAdoptionNote(Decisions.pluginTokenFailure(providerId, region, line)(cause), ctx.notAdopted),
      ...(configProblem ? { unavailable: { ok: false, status: 500, code: "kimi_config", message: configProblem } } : {}),
      onTokens: (tokens) => {
        mirror(ctx, tokens)
        ctx.fast = { tokens, access: Redacted.value(tokens.accessToken) }
      }
    }),
    runtime, fast: undefined, fastCheckedAt: 0, mirrored: undefined,
    identityHeaders: {}, oauthFetch: undefined, oauthFetchReady: undefined, notAdopted: undefined
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
    judgeRefusal: (response, sentToken) => judgeRefusal(ctx, response, sentToken),
    dispose: () => dispose(ctx)
  }
}

/** Reads a `GET /models` answer leniently (the one decoder, `api/Models.ts`); never throws. */
export const modelsFromApi = (body: unknown): Array<ApiModel> =>
  Option.getOrElse(decodeModels(body), () => []).map((m) => ({
    id: m.id,
    displayName: m.displayName,
    contextLength: m.contextLength,
    reasoning: m.supportsReasoning !== false,
    image: m.supportsImageIn === true
  }))

export { errorResponse }
export type { OAuthEntry } from "./Adoption.js"
