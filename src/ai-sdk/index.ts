/**
 * Kimi For Coding for the Vercel AI SDK: `createKimi()` returns an
 * `@ai-sdk/openai-compatible` provider whose `fetch` is this package's
 * authorizing fetch (the same request core as the OpenCode plugin): the
 * stored device login's token, refreshed when due, the identity headers, one
 * refresh and retry on a `401`, and a used-up quota answered as a clear
 * error (a `403` naming the window and its reset), never retried in vain.
 *
 * ```ts
 * import { streamText } from "ai"
 * import { createKimi } from "opencode-kimi-auth/ai-sdk"
 *
 * const kimi = createKimi()                     // region, hosts, storage, account: as everywhere else
 * const ada = createKimi({ account: "ada@example.com" })   // another logged-in account (`kimi-auth accounts`)
 * const result = streamText({ model: kimi("kimi-for-coding"), prompt: "Hello" })
 * for await (const text of result.textStream) process.stdout.write(text)
 * await kimi.dispose()
 * ```
 *
 * `ai` and `@ai-sdk/openai-compatible` are optional peer dependencies: only
 * this subpath loads them. Thinking: the AI SDK's `reasoning` option is sent
 * in Kimi's format (see {@link toKimiThinking}), or pass Kimi's own switch
 * through `providerOptions: { kimi: { thinking: { type: "enabled" } } }`;
 * streamed `reasoning_content` arrives as the AI SDK's reasoning.
 *
 * @since 0.2.0
 */
import { createOpenAICompatible, type OpenAICompatibleProvider } from "@ai-sdk/openai-compatible"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { issuerFor, type KimiAuthSettings, resolve } from "../config/KimiAuthConfig.js"
import { makeEdgeRuntime } from "../edge/Runtime.js"
import type { KimiAuthLayerOptions } from "../KimiAuth.js"
import { rebased } from "../request/ApiBase.js"
import { makeKimiFetch } from "../request/AuthorizingFetch.js"
import { causeMessage as messageOf, makeManagedTokenSource, typedFailure } from "../request/ManagedTokenSource.js"
import { thinkingOf } from "../opencode/Thinking.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import { TokenStore } from "../storage/TokenStore.js"

/** The model ids of OpenCode's catalog for Kimi For Coding (any other id the account lists works too). */
export type KimiModelId = "kimi-for-coding" | "kimi-for-coding-highspeed" | "k3" | "k3-256k" | (string & {})

/**
 * Options of {@link createKimi}: the same settings as everywhere else
 * (region, hosts, storage folder, and `account`: the Kimi account to use,
 * by default the active one of the region, or the current one).
 */
export interface KimiProviderOptions extends KimiAuthLayerOptions {
  /** The fetch under the authorizing one; `globalThis.fetch` by default. */
  readonly fetch?: typeof globalThis.fetch | undefined
  /** Extra headers on every request. */
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** The provider: an `@ai-sdk/openai-compatible` provider plus `dispose()`. */
export interface KimiProvider extends OpenAICompatibleProvider<KimiModelId, KimiModelId, string, string> {
  /** The API base requests go to (the region's, or the one the login was issued by). */
  readonly apiBaseUrl: () => string
  /** Releases the token manager's runtime. Idempotent. */
  readonly dispose: () => Promise<void>
  readonly [Symbol.asyncDispose]: () => Promise<void>
}

/** Models of OpenCode's catalog whose thinking takes an effort (`reasoning_options: [{ type: "effort" }]`). */
const EFFORT_MODELS: ReadonlySet<string> = new Set(["k3-256k"])

/**
 * Kimi's thinking format for a request body the AI SDK built: its
 * `reasoning_effort` (from the `reasoning` call option) becomes
 * `thinking: { type: "enabled" | "disabled" }`, with `effort` for models that
 * take one; Moonshot's own clients stopped sending `reasoning_effort`. A
 * `thinking` already in the body (from `providerOptions.kimi`) wins. Pure:
 * the OpenCode plugin's rule (`opencode/Thinking.ts`), told which models take
 * an effort.
 */
export const toKimiThinking = (body: Record<string, unknown>): Record<string, unknown> =>
  thinkingOf(body, { takesEffort: (model) => EFFORT_MODELS.has(model) }) as Record<string, unknown>

/**
 * Creates the Kimi provider. Settings are resolved at once: a bad option or
 * environment value throws here with a message saying what to fix. Nothing
 * is read from disk until the first request.
 */
export const createKimi = (options: KimiProviderOptions = {}): KimiProvider => {
  const { fetch: baseFetch, headers: extraHeaders, ...authOptions } = options
  const settingsExit = Effect.runSyncExit(resolve(authOptions))
  if (Exit.isFailure(settingsExit)) throw new Error(`createKimi: ${messageOf(settingsExit.cause)}`)
  const settings: KimiAuthSettings = settingsExit.value

  const runtime = makeEdgeRuntime(authOptions, "silent")
  const run = runtime.run

  // The login's issuer decides the API base unless it is pinned; follow every token set handed out.
  let latest: TokenSet | undefined
  const apiBaseUrl = () => issuerFor(settings, latest).apiBaseUrl

  const tokens = makeManagedTokenSource({
    run,
    failure: typedFailure,
    onTokens: (t) => {
      latest = t
    }
  })

  /** Built on first use: the identity headers need the device id, and the stored login tells the API base. */
  let ready: Promise<ReturnType<typeof makeKimiFetch>> | undefined
  const build = async () => {
    const identity = await run(DeviceIdentity.use(Effect.succeed))
    const stored = await run(Effect.flatMap(TokenStore, (s) => s.load))
    if (latest === undefined && Exit.isSuccess(stored)) latest = stored.value
    return makeKimiFetch({
      headers: Exit.isSuccess(identity) ? identity.value.headers : {},
      fetch: baseFetch,
      apiBaseUrl,
      getAccessToken: tokens.getAccessToken,
      refreshAfterRejection: tokens.refreshAfterRejection
    })
  }

  /** The provider was made with the settings' base; a login issued elsewhere moves requests to its own base. */
  const kimiFetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const f = await (ready ??= build())
    const base = apiBaseUrl()
    if (base === settings.apiBaseUrl || (typeof input !== "string" && !(input instanceof URL))) return f(input, init)
    return f(rebased(String(input), settings.apiBaseUrl, base) ?? input, init)
  }

  const provider = createOpenAICompatible<KimiModelId, KimiModelId, string, string>({
    name: "kimi",
    baseURL: settings.apiBaseUrl,
    // A placeholder: the authorizing fetch replaces it with the login's token on every request.
    apiKey: "kimi-oauth",
    ...(extraHeaders ? { headers: { ...extraHeaders } } : {}),
    fetch: kimiFetch as typeof globalThis.fetch,
    includeUsage: true,
    transformRequestBody: toKimiThinking
  })

  let disposed: Promise<void> | undefined
  const dispose = () => (disposed ??= runtime.dispose())
  return Object.assign(provider, { apiBaseUrl, dispose, [Symbol.asyncDispose]: dispose })
}
