/**
 * The OpenCode plugin: Kimi device login inside `opencode auth login`, and a
 * `fetch` that keeps every Kimi request authorized.
 *
 * A thin edge over the core: one managed runtime per plugin instance (built
 * on first use, disposed by the `dispose` hook), the project's token store as
 * the source of truth, OpenCode's `auth.json` only mirrored (it has no lock
 * and drops the device id). Nothing here throws into OpenCode: failures are
 * logged (when DEBUG asks) and turned into `{ type: "failed" }` or an error
 * `Response` whose message says to run `opencode auth login -p kimi`.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import { DeviceFlow } from "../DeviceFlow.js"
import { DeviceIdentity } from "../DeviceIdentity.js"
import { type KimiAuthOptions, type KimiAuthSettings, resolve } from "../KimiAuthConfig.js"
import { type KimiAuthServices, layerNode } from "../KimiAuth.js"
import type { DeviceAuthorization } from "../OAuthClient.js"
import { isDue, TokenManager } from "../TokenManager.js"
import { TokenSet } from "../TokenSet.js"
import { TokenStore } from "../TokenStore.js"
import { makeKimiFetch, type TokenResult } from "./KimiFetch.js"
import { modelsFromApi, providerBlock } from "./ProviderConfig.js"

/** The provider id used when the plugin options name none. */
export const DEFAULT_PROVIDER_ID = "kimi"

/** The label of the device login method; `opencode auth login -p kimi -m "Kimi device login"`. */
export const DEVICE_LOGIN_LABEL = "Kimi device login"

/** The `apiKey` the loader hands the AI SDK for OAuth logins; the fetch replaces it with the real token. */
const OAUTH_PLACEHOLDER = "kimi-oauth"

/** The Authorization header of a RequestInit's headers, without building a `Headers` for the common plain object. */
const authorizationOf = (headers: RequestInit["headers"]): string | undefined => {
  if (headers == null) return undefined
  if (headers instanceof Headers || Array.isArray(headers)) return new Headers(headers).get("authorization") ?? undefined
  const record = headers as Record<string, string>
  return record["authorization"] ?? record["Authorization"]
}

/** Options from `"plugin": [["opencode-kimi-auth", { ... }]]` in `opencode.json`. */
export interface KimiPluginOptions extends KimiAuthOptions {
  /** Provider id; `kimi` by default. */
  readonly provider?: string | undefined
}

/** The structural subset of OpenCode's plugin input this plugin uses. */
export interface PluginInputLike {
  readonly client?: {
    readonly auth?: {
      readonly set?: (args: { path: { id: string }; body: Record<string, unknown> }) => Promise<unknown>
    }
  }
}

/** OpenCode's stored credential for the provider, as `getAuth()` returns it. */
type OpenCodeAuth =
  | { readonly type: "oauth"; readonly refresh: string; readonly access: string; readonly expires: number }
  | { readonly type: "api"; readonly key: string }
  | { readonly type: string }
  | undefined

type OAuthCallbackResult =
  | { type: "success"; refresh: string; access: string; expires: number }
  | { type: "failed" }

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

const LOGIN = "run `opencode auth login -p kimi` (or `kimi-auth login`)"

/** Maps a token failure to an HTTP-ish status and a message for the AI SDK to show. */
const tokenFailure = (cause: Cause.Cause<unknown>): TokenResult => {
  const f = failureOf(cause)
  switch (f._tag) {
    case "NotLoggedInError":
    case "CorruptTokenFileError":
      return { ok: false, status: 401, code: "kimi_login_required", message: `Kimi login required: ${f.message}` }
    case "NetworkError":
    case "ServerError":
      return { ok: false, status: 503, code: "kimi_auth_unavailable", message: `Could not refresh the Kimi token: ${f.message}` }
    case "TokenStoreError":
    case "LockTimeoutError":
      return { ok: false, status: 500, code: "kimi_token_storage", message: f.message }
    case "ConfigError":
      return { ok: false, status: 500, code: "kimi_config", message: f.message }
    default:
      return { ok: false, status: 502, code: "kimi_auth_error", message: `${f.message} If it persists, ${LOGIN}.` }
  }
}

/**
 * The plugin. `input.client.auth.set` is used to mirror refreshed tokens into
 * OpenCode's auth store.
 */
export const KimiAuthPlugin = async (input: PluginInputLike = {}, rawOptions?: Record<string, unknown>) => {
  const options = (rawOptions ?? {}) as KimiPluginOptions
  const providerId = typeof options.provider === "string" && options.provider !== "" ? options.provider : DEFAULT_PROVIDER_ID
  const { provider: _provider, ...authOptions } = options

  // Resolve the configuration now; a bad setting must not crash OpenCode, only disable the plugin's calls.
  const settingsExit = Effect.runSyncExit(resolve(authOptions))
  const settings: KimiAuthSettings | undefined = Exit.isSuccess(settingsExit) ? settingsExit.value : undefined
  const configProblem = Exit.isFailure(settingsExit) ? failureOf(settingsExit.cause).message : undefined

  let runtime: ManagedRuntime.ManagedRuntime<KimiAuthServices, unknown> | undefined
  const getRuntime = () =>
    (runtime ??= ManagedRuntime.make(
      layerNode({ ...authOptions, backgroundRefresh: true }).pipe(Layer.provideMerge(loggingLayer()))
    ))
  const run = <A>(effect: Effect.Effect<A, unknown, KimiAuthServices>, signal?: AbortSignal) =>
    getRuntime().runPromiseExit(effect, signal ? { signal } : undefined)

  // Fast path of the request `fetch`: the last token set the manager handed out, served without
  // entering the Effect runtime while it is not due. The manager itself serves its cached set under
  // the same rule (`isDue` with the same window), so this skips only the runtime's per-call cost
  // (a fiber, a span: ~50 µs, about half a loopback request in Bun; BENCHMARKS.md, "Request overhead").
  // Every slow-path success (refresh, 401 invalidation, login, adoption) replaces it.
  const windowSeconds = settings ? Duration.toSeconds(settings.refreshWindow) : 300
  let fast: { readonly tokens: TokenSet; readonly access: string } | undefined

  let mirrored: string | undefined
  /** Mirrors a token set into OpenCode's auth store, best effort, at most once per access token. */
  const mirror = (tokens: TokenSet) => {
    const access = Redacted.value(tokens.accessToken)
    if (access === mirrored || !input.client?.auth?.set) return
    mirrored = access
    const forget = () => {
      mirrored = undefined
    }
    try {
      Promise.resolve(
        input.client.auth.set({
          path: { id: providerId },
          body: { type: "oauth", refresh: Redacted.value(tokens.refreshToken), access, expires: tokens.expiresAt * 1000 }
        })
      ).catch(forget)
    } catch {
      forget() // a synchronous throw from the host's client must not reach the request
    }
  }

  const tokenResult = async (effect: Effect.Effect<TokenSet, unknown, KimiAuthServices>, signal?: AbortSignal) => {
    if (configProblem) return { ok: false, status: 500, code: "kimi_config", message: configProblem } as const
    try {
      const exit = await run(effect, signal)
      if (Exit.isFailure(exit)) return tokenFailure(exit.cause)
      mirror(exit.value)
      const access = Redacted.value(exit.value.accessToken)
      fast = { tokens: exit.value, access }
      return { ok: true, token: access } as const
    } catch (e) {
      return { ok: false, status: 500, code: "kimi_auth_error", message: String(e) } as const
    }
  }

  /** Imports OpenCode's stored login into our store when ours is empty (e.g. a new storage folder). */
  const adoptOpenCodeLogin = (auth: OpenCodeAuth) =>
    Effect.gen(function*() {
      if (!auth || auth.type !== "oauth") return
      const a = auth as { refresh: string; access: string; expires: number }
      if (typeof a.refresh !== "string" || a.refresh === "" || typeof a.access !== "string") return
      const store = yield* TokenStore
      if ((yield* store.load) !== undefined) return
      const expiresAt = Math.floor(a.expires / 1000)
      const manager = yield* TokenManager
      yield* manager.setTokens(
        new TokenSet({
          accessToken: Redacted.make(a.access),
          refreshToken: Redacted.make(a.refresh),
          tokenType: "Bearer",
          expiresIn: Math.max(0, expiresAt - Math.floor(Date.now() / 1000)),
          scope: "",
          expiresAt
        })
      )
    })

  /**
   * The device login method. Failures throw an `Error` whose message says what
   * happened and what to do: OpenCode 1.18.33 prints it as `Failed to authorize:
   * <message>` and exits 1, where `{ type: "failed" }` would print only
   * "Failed to authorize" and exit 0 (test/opencode/NOTES.md).
   */
  const startLogin = async (): Promise<
    { url: string; instructions: string; method: "auto"; callback: () => Promise<OAuthCallbackResult> }
  > => {
    if (configProblem) throw new Error(`Kimi login could not start: ${configProblem}`)
    const started = await run(Effect.flatMap(DeviceFlow, (f) => f.start)).catch((e) => Exit.die(e))
    if (Exit.isFailure(started)) throw new Error(`Kimi login could not start: ${failureOf(started.cause).message}`)
    const authorization: DeviceAuthorization = started.value
    const minutes = Math.max(1, Math.round(authorization.expiresIn / 60))
    return {
      url: authorization.verificationUriComplete ?? authorization.verificationUri,
      instructions: `Enter code: ${authorization.userCode} (confirm it matches the page; it expires in ${minutes} min)`,
      method: "auto",
      callback: async () => {
        const exit = await run(
          Effect.gen(function*() {
            const flow = yield* DeviceFlow
            const manager = yield* TokenManager
            const tokens = yield* flow.awaitTokens(authorization)
            yield* manager.setTokens(tokens)
            return tokens
          })
        ).catch((e) => Exit.die(e))
        if (Exit.isFailure(exit)) {
          const f = failureOf(exit.cause)
          await run(Effect.logWarning(`Kimi login failed: ${f.message}`)).catch(() => {})
          throw new Error(f.message.replace(/`kimi-auth login`/g, "`opencode auth login -p kimi`"))
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

  /**
   * Models from the API when logged in (1.5 s budget), else the static list.
   * Goes through the same request fetch as the chat calls (token, headers, 401 retry).
   */
  const fetchModels = async () => {
    if (!settings) return {}
    try {
      const stored = await run(Effect.flatMap(TokenStore, (s) => s.load))
      if (Exit.isFailure(stored) || stored.value === undefined) return {}
      const response = await requestFetch(`${settings.apiBaseUrl}/models`, {
        headers: { accept: "application/json" },
        signal: AbortSignal.timeout(1500)
      })
      return response.ok ? modelsFromApi(await response.json()) : {}
    } catch {
      return {}
    }
  }

  /** The OAuth request fetch, built once on first use (the identity headers need the device id). */
  let oauthFetch: Promise<ReturnType<typeof makeKimiFetch>> | undefined
  const buildOAuthFetch = async () => {
    const identity = configProblem ? undefined : await run(DeviceIdentity.use(Effect.succeed)).catch(() => undefined)
    identityHeaders = identity && Exit.isSuccess(identity) ? identity.value.headers : {}
    return makeKimiFetch({
      headers: identityHeaders,
      getAccessToken: (signal) => {
        const f = fast
        if (f !== undefined && !signal?.aborted && !isDue(f.tokens, Date.now() / 1000, windowSeconds)) {
          return Promise.resolve({ ok: true, token: f.access } as const)
        }
        return tokenResult(Effect.flatMap(TokenManager, (m) => m.getTokens), signal)
      },
      refreshAfterRejection: (rejected, signal) =>
        tokenResult(Effect.flatMap(TokenManager, (m) => m.invalidate(Redacted.make(rejected))), signal)
    })
  }
  let identityHeaders: Readonly<Record<string, string>> = {}
  let oauthFetchReady: ReturnType<typeof makeKimiFetch> | undefined

  /**
   * The `fetch` every Kimi request goes through. A request that carries a
   * bearer other than our placeholder comes from an API-key login: it is sent
   * with the identity headers and its own key. Everything else gets OAuth.
   */
  const requestFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    // Once built, used without an extra await: every request passes here (BENCHMARKS.md, "Request overhead").
    const f = oauthFetchReady ?? (oauthFetchReady = await (oauthFetch ??= buildOAuthFetch()))
    const given = authorizationOf(init?.headers)
    if (given !== undefined && given !== `Bearer ${OAUTH_PLACEHOLDER}`) {
      const headers = new Headers(init?.headers)
      for (const [k, v] of Object.entries(identityHeaders)) headers.set(k, v)
      return fetch(input, { ...init, headers })
    }
    return f(input, init)
  }

  return {
    /** Defines the provider unless the user already did (theirs wins). */
    config: async (config: { provider?: Record<string, unknown> }) => {
      try {
        if (!settings) return
        config.provider ??= {}
        if (config.provider[providerId] !== undefined) return
        const block = providerBlock(settings.apiBaseUrl, await fetchModels())
        // OpenCode uses a config `fetch` even when auth.json has no entry (no loader runs then), so a
        // login made with `kimi-auth login` alone is enough; it also beats the loader's (the same function).
        config.provider[providerId] = { ...block, options: { ...block.options, fetch: requestFetch } }
      } catch {
        // never break OpenCode's configuration
      }
    },
    auth: {
      provider: providerId,
      loader: async (getAuth: () => Promise<OpenCodeAuth>) => {
        const auth = await getAuth().catch(() => undefined)
        const baseURL = settings?.apiBaseUrl ?? "https://api.kimi.com/coding/v1"
        if (auth && auth.type === "api" && typeof (auth as { key?: unknown }).key === "string") {
          // An API key login: the SDK sends the key; `requestFetch` adds the identity headers and leaves it alone.
          return { apiKey: (auth as { key: string }).key, baseURL, fetch: requestFetch }
        }
        if (!configProblem) await run(adoptOpenCodeLogin(auth)).catch(() => {})
        return { apiKey: OAUTH_PLACEHOLDER, baseURL, fetch: requestFetch }
      },
      methods: [
        { type: "oauth" as const, label: DEVICE_LOGIN_LABEL, authorize: startLogin },
        { type: "api" as const, label: "Kimi API key" }
      ]
    },
    dispose: async () => {
      const rt = runtime
      runtime = undefined
      fast = undefined
      await rt?.dispose().catch(() => {})
    }
  }
}

/** The OpenCode plugin module form: `export default { id, server }`. */
export const pluginModule = { id: "opencode-kimi-auth", server: KimiAuthPlugin } as const

