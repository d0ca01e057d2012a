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
import { DeviceFlow } from "../DeviceFlow.js"
import { LOGIN_HINT } from "../Errors.js"
import { DeviceIdentity } from "../DeviceIdentity.js"
import { isLoggedOut } from "../LogoutMarker.js"
import { type KimiAuthOptions, type KimiAuthSettings, resolve } from "../KimiAuthConfig.js"
import { type KimiAuthServices, layerNode } from "../KimiAuth.js"
import { checkCanStoreLogin, storeLogin } from "../LoginStorage.js"
import type { DeviceAuthorization } from "../OAuthClient.js"
import { type KimiRegion, REGIONS } from "../Region.js"
import { isDue, PRESENCE_CHECK_MILLIS, TokenManager } from "../TokenManager.js"
import { TokenSet } from "../TokenSet.js"
import { TokenStore } from "../TokenStore.js"
import { readWebTextPrefix } from "../HttpBody.js"
import { classifyRefusal, quotaMessage, REFUSAL_BODY_LIMIT } from "../KimiRequest.js"
import { decodeUsage, type KimiUsage } from "../Usage.js"
import { ERROR_HEADER, errorResponse, makeKimiFetch, type TokenResult } from "../AuthorizingFetch.js"
import { makeManagedTokenSource, type TokenFailure } from "../ManagedTokenSource.js"

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
 * Which OpenCode hosts the plugin: the 1.18 line (`opencode auth login -p <provider>`) or OpenCode 2,
 * whose CLI has no such command (its `auth login` takes a provider URL) and logs in through `/connect`.
 */
export type OpenCodeLine = "v1" | "v2"

/** The login command to name inside OpenCode: OpenCode's own first (a plugin user may have no `kimi-auth`). */
export const loginHint = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string => {
  const cli = `\`kimi-auth login${region === "mainland-cn" ? "" : ` --region ${region}`}\``
  return line === "v2"
    ? `in OpenCode, use \`/connect\`, pick ${REGIONS[region].label} (${providerId}), then "Kimi device login"; or run ${cli}`
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

/** Builds the core for one provider. */
export const makePluginCore = (config: PluginCoreConfig): PluginCore => {
  const { providerId, region } = config
  const line = config.line ?? "v1"
  const authOptions: KimiAuthOptions = { ...config.options, region }
  const login = loginHint(providerId, region, line)

  const settingsExit = Effect.runSyncExit(resolve(authOptions))
  const settings: KimiAuthSettings | undefined = Exit.isSuccess(settingsExit) ? settingsExit.value : undefined
  const configProblem = Exit.isFailure(settingsExit) ? failureOf(settingsExit.cause).message : undefined

  let runtime: ManagedRuntime.ManagedRuntime<KimiAuthServices, unknown> | undefined
  const getRuntime = () =>
    (runtime ??= ManagedRuntime.make(
      layerNode({ ...authOptions, backgroundRefresh: true }).pipe(Layer.provideMerge(loggingLayer()))
    ))
  const run = <A>(effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal) =>
    getRuntime().runPromiseExit(effect, signal ? { signal } : undefined).catch((e) => Exit.die(e))

  // Fast path of the request `fetch`: the last token set the manager handed out, served without
  // entering the Effect runtime while it is not due (BENCHMARKS.md, "Request overhead"). Every
  // slow-path success replaces it; a token the server rejected is dropped from it at once, so a
  // refresh that did not finish (a cancelled request) never leaves a rejected token to be served again.
  const windowSeconds = settings ? Duration.toSeconds(settings.refreshWindow) : 300
  let fast: { readonly tokens: TokenSet; readonly access: string } | undefined
  let fastCheckedAt = 0
  /**
   * False only when a logout removed this login: the token file is gone and
   * `logged-out.json` records it (one stat, and a small read only then).
   * Notes the time of the check.
   */
  const stillStored = (tokens: TokenSet, access: string): boolean => {
    fastCheckedAt = Date.now()
    try {
      return settings === undefined || nodeFs.existsSync(settings.tokenFilePath) ||
        !isLoggedOut(settings.storageDir, [access, Redacted.value(tokens.refreshToken)])
    } catch {
      return true
    }
  }

  let mirrored: string | undefined
  /** Mirrors a token set into OpenCode's auth store, best effort, at most once per access token. */
  const mirror = (tokens: TokenSet) => {
    const access = Redacted.value(tokens.accessToken)
    if (access === mirrored || !config.setAuth) return
    mirrored = access
    const forget = () => {
      mirrored = undefined
    }
    try {
      Promise.resolve(
        config.setAuth({
          path: { id: providerId },
          body: { type: "oauth", refresh: Redacted.value(tokens.refreshToken), access, expires: tokens.expiresAt * 1000 }
        })
      ).catch(forget)
    } catch {
      forget() // a synchronous throw from the host's client must not reach the request
    }
  }

  const source = makeManagedTokenSource({
    run,
    failure: pluginTokenFailure(providerId, region, line),
    ...(configProblem ? { unavailable: { ok: false, status: 500, code: "kimi_config", message: configProblem } } : {}),
    refuse: otherRegionRefusal(providerId, region, line),
    onTokens: (tokens) => {
      mirror(tokens)
      fast = { tokens, access: Redacted.value(tokens.accessToken) }
    }
  })
  const accessToken = (signal?: AbortSignal): Promise<TokenResult> => {
    const f = fast
    const now = Date.now()
    if (f !== undefined && !signal?.aborted && !isDue(f.tokens, now / 1000, windowSeconds)) {
      // A logout elsewhere removes the file: looked for at most every PRESENCE_CHECK_MILLIS (one stat).
      if (now - fastCheckedAt < PRESENCE_CHECK_MILLIS || stillStored(f.tokens, f.access)) {
        return Promise.resolve({ ok: true, token: f.access } as const)
      }
      fast = undefined
    }
    return source.getAccessToken(signal)
  }
  const refreshAfterRejection = (rejected: string, signal?: AbortSignal): Promise<TokenResult> => {
    if (fast?.access === rejected) fast = undefined
    return source.refreshAfterRejection(rejected, signal)
  }
  const rejectedMessage = `Kimi rejected the access token and no new one could be obtained (a token refreshed moments ago ` +
    `is not refreshed again); check the provider's region and base URL, or log in again: ${login}.`

  let identityHeaders: Readonly<Record<string, string>> = {}
  const buildOAuthFetch = async () => {
    const identity = configProblem ? undefined : await run(DeviceIdentity.use(Effect.succeed))
    identityHeaders = identity && Exit.isSuccess(identity) ? identity.value.headers : {}
    return makeKimiFetch({
      headers: identityHeaders,
      // The core's "log in again" names OpenCode's command without the provider: name this one.
      rejectedMessage,
      // Only requests below the provider's API base are authorized; a quota refusal reads its /usages.
      ...(settings ? { apiBaseUrl: settings.apiBaseUrl } : {}),
      getAccessToken: accessToken,
      refreshAfterRejection
    })
  }
  let oauthFetch: Promise<ReturnType<typeof makeKimiFetch>> | undefined
  let oauthFetchReady: ReturnType<typeof makeKimiFetch> | undefined

  const fetchAfterBuild = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    oauthFetchReady ??= await (oauthFetch ??= buildOAuthFetch())
    return oauthFetchReady(input, init)
  }
  // Once built, the core's fetch is handed on as is: every request passes here, and a wrapper that
  // awaits the response costs microtask turns (BENCHMARKS.md, "Request overhead").
  const fetch = (input: RequestInfo | URL, init?: RequestInit): Promise<Response> =>
    oauthFetchReady !== undefined ? oauthFetchReady(input, init) : fetchAfterBuild(input, init)

  const apiKeyFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    if (oauthFetchReady === undefined) oauthFetchReady = await (oauthFetch ??= buildOAuthFetch())
    const headers = new Headers(init?.headers)
    for (const [k, v] of Object.entries(identityHeaders)) headers.set(k, v)
    return globalThis.fetch(input, { ...init, headers })
  }

  const adopt = async (entry: OAuthEntry) => {
    if (configProblem || !settings) return
    if (typeof entry.refresh !== "string" || entry.refresh === "" || typeof entry.access !== "string") return
    const storageDir = settings.storageDir
    await run(
      Effect.gen(function*() {
        const store = yield* TokenStore
        // Under the lock, so a logout in another process cannot slip between the checks and the save.
        const adopted = yield* store.withLock(Effect.gen(function*() {
          if ((yield* store.load) !== undefined) return "kept"
          // A copy of a login the user logged out of (`kimi-auth logout`) is never brought back; a new login is.
          if (isLoggedOut(storageDir, [entry.refresh, entry.access])) return "logged-out"
          const expiresAt = Math.floor(entry.expires / 1000)
          yield* store.save(
            new TokenSet({
              accessToken: Redacted.make(entry.access),
              refreshToken: Redacted.make(entry.refresh),
              tokenType: "Bearer",
              expiresIn: Math.max(0, expiresAt - Math.floor(Date.now() / 1000)),
              scope: "",
              expiresAt,
              region
            })
          )
          return "adopted"
        }))
        yield* Effect.logDebug(
          adopted === "logged-out"
            ? `plugin: OpenCode's stored login for ${providerId} is one the user logged out of; not adopted`
            : adopted === "adopted"
            ? `plugin: adopted OpenCode's stored login for ${providerId} into ${store.path}`
            : `plugin: a login is already stored; OpenCode's copy for ${providerId} is not needed`
        )
      })
    )
  }

  /**
   * The device login method. Failures throw an `Error` whose message says what
   * happened and what to do: OpenCode 1.18.33 prints it as `Failed to authorize:
   * <message>` and exits 1, where `{ type: "failed" }` would print only
   * "Failed to authorize" and exit 0 (test/opencode/NOTES.md).
   */
  const startLogin = async (): Promise<DeviceLoginStart> => {
    if (configProblem) throw new Error(`Kimi login could not start: ${configProblem}`)
    // Proven storable first: the user must never approve a login that cannot be kept.
    const started = await run(Effect.andThen(checkCanStoreLogin, Effect.flatMap(DeviceFlow, (f) => f.start)))
    if (Exit.isFailure(started)) {
      throw new Error(`Kimi login could not start: ${openCodeFirst(failureOf(started.cause).message, providerId, region, line)}`)
    }
    const authorization: DeviceAuthorization = started.value
    const minutes = Math.max(1, Math.round(authorization.expiresIn / 60))
    return {
      url: authorization.verificationUriComplete ?? authorization.verificationUri,
      expiresAt: Date.now() + authorization.expiresIn * 1000,
      instructions: `Enter code: ${authorization.userCode} (confirm it matches the page; it expires in ${minutes} min)`,
      method: "auto",
      callback: async () => {
        const exit = await run(
          Effect.gen(function*() {
            const flow = yield* DeviceFlow
            const tokens = yield* flow.awaitTokens(authorization)
            yield* storeLogin(tokens)
            return tokens
          })
        )
        if (Exit.isFailure(exit)) {
          const f = failureOf(exit.cause)
          await run(Effect.logWarning(`Kimi login failed: ${f.message}`))
          throw new Error(openCodeFirst(f.message, providerId, region, line))
        }
        const tokens = exit.value
        mirrored = Redacted.value(tokens.accessToken)
        fast = { tokens, access: mirrored }
        return {
          type: "success",
          refresh: Redacted.value(tokens.refreshToken),
          access: Redacted.value(tokens.accessToken),
          expires: tokens.expiresAt * 1000
        }
      }
    }
  }

  const listModels = async (apiBaseUrl: string, budgetMillis: number): Promise<ReadonlyArray<ApiModel>> => {
    if (configProblem) return []
    // The request is not cancelled when the budget runs out: a refresh it started (a 401 on a
    // token we believed valid) finishes and serves the chat requests that follow.
    const request = (async () => {
      const response = await fetch(`${apiBaseUrl}/models`, { headers: { accept: "application/json" } })
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

  const identity = async () => {
    if (oauthFetchReady === undefined) oauthFetchReady = await (oauthFetch ??= buildOAuthFetch())
    return identityHeaders
  }

  const currentLogin = async (): Promise<CurrentLogin> => {
    const r = await source.getTokens()
    return r.ok ? { ok: true, access: r.access, expiresMillis: r.tokens.expiresAt * 1000 } : r
  }

  const resendAfterRejection = async (request: Request, rejected: string): Promise<Response> => {
    const headers = await identity()
    const once = makeKimiFetch({
      headers,
      rejectedMessage,
      ...(settings ? { apiBaseUrl: settings.apiBaseUrl } : {}),
      // The first send of this fetch is the retry: its token comes from the forced refresh.
      getAccessToken: async (signal) => {
        const r = await refreshAfterRejection(rejected, signal)
        return r.ok && r.token === rejected ? { ok: false, status: 401, code: "invalid_authentication_error", message: rejectedMessage } : r
      },
      refreshAfterRejection
    })
    return once(request)
  }

  const readUsage = async (): Promise<KimiUsage | undefined> => {
    if (!settings) return undefined
    try {
      const response = await fetch(`${settings.apiBaseUrl}/usages`, { headers: { accept: "application/json" }, signal: AbortSignal.timeout(5000) })
      if (!response.ok) return undefined
      const decoded = decodeUsage(await response.json())
      return decoded._tag === "Success" ? decoded.success : undefined
    } catch {
      return undefined
    }
  }

  const judgeRefusal = async (response: Response): Promise<Response> => {
    if (response.status !== 403 && response.status !== 429) return response
    const text = await readWebTextPrefix(response, REFUSAL_BODY_LIMIT).catch(() => "")
    const refusal = classifyRefusal(response.status, text, response.headers.get("retry-after") ?? undefined)
    if (refusal?._tag !== "QuotaExceeded") {
      return new Response(text, { status: response.status, statusText: response.statusText, headers: response.headers })
    }
    const message = quotaMessage(refusal, await readUsage())
    return new Response(JSON.stringify({ error: { message, type: QUOTA_ERROR_TYPE, code: QUOTA_ERROR_TYPE } }), {
      status: 403,
      headers: { "content-type": "application/json", [ERROR_HEADER]: "kimi_quota_exceeded" }
    })
  }

  return {
    fetch,
    apiKeyFetch,
    startLogin,
    adopt,
    listModels,
    currentLogin,
    accessToken,
    identity,
    resendAfterRejection,
    judgeRefusal,
    dispose: async () => {
      const rt = runtime
      runtime = undefined
      fast = undefined
      await rt?.dispose().catch(() => {})
    }
  }
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

export { errorResponse }
