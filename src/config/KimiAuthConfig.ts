/**
 * Where opencode-kimi-auth talks to and where it keeps its files.
 *
 * Built from explicit options first, then the environment
 * (`KIMI_CODE_OAUTH_HOST` before `KIMI_OAUTH_HOST`, `KIMI_CODE_BASE_URL`,
 * `OPENCODE_KIMI_AUTH_DIR`), then the chosen region's endpoints (default
 * `mainland-cn`). A plain-`http:` host is refused unless it is on loopback,
 * a URL with credentials and a relative storage path are refused, all before
 * any I/O. The rules live in the effect-free `ResolveSettings.ts`.
 *
 * The account (option `account`, else the active account of the region) is
 * chosen here, from the storage folder's `accounts.json`
 * (`light/AccountSettings.ts`): the configuration decides which token file,
 * and so which rotation family, every other service works on.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { ConfigError } from "../Errors.js"
import { DEFAULT_REGION, REGIONS } from "../light/Region.js"
import type { Account } from "../light/AccountChoice.js"
import { type AccountSettingsOptions, resolveAccountSettings } from "../light/AccountSettings.js"
import { checkBaseUrl, ENV, type PlainSettings } from "../light/ResolveSettings.js"

export {
  DEFAULT_CLIENT_ID,
  DEFAULT_PLATFORM,
  DEFAULT_STORAGE_DIR_NAME,
  DEFAULT_VERSION,
  issuerFor,
  type Issuer
} from "../light/ResolveSettings.js"
export { DEFAULT_REGION, type KimiRegion, REGIONS } from "../light/Region.js"

/** Kimi's OAuth host in the default region (`mainland-cn`). */
export const DEFAULT_OAUTH_HOST = REGIONS[DEFAULT_REGION].oauthHost
/** The Kimi For Coding API base in the default region (`mainland-cn`). */
export const DEFAULT_API_BASE_URL = REGIONS[DEFAULT_REGION].apiBaseUrl

/** Options accepted by {@link KimiAuthConfig.layer}; each beats the environment. */
export interface KimiAuthOptions extends AccountSettingsOptions {
  /** Refresh when less than this much lifetime remains (capped for short-lived tokens). Default 300 s. */
  readonly refreshWindow?: Duration.Input | undefined
  /** Timeout of each HTTP request. Default 30 s. */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * How long a refresh request, once sent, is awaited. Default 5 minutes
   * ({@link DEFAULT_REFRESH_ANSWER_TIMEOUT}): Kimi rotates the refresh token on
   * receipt, so the answer is the only copy of the new one.
   */
  readonly refreshAnswerTimeout?: Duration.Input | undefined
  /**
   * Longest wait for the cross-process refresh lock. Default 30 s; never less
   * than a live holder may take within its own deadlines ({@link lockWaitFor}).
   */
  readonly lockTimeout?: Duration.Input | undefined
  /** A lock older than this whose holder cannot be seen alive is taken over. Default 10 s. */
  readonly staleLockAfter?: Duration.Input | undefined
}

/**
 * The default bound on awaiting a sent refresh: 5 minutes. Kimi answers a
 * refresh in well under a second; an answer later than the 30 s request
 * timeout means an overloaded endpoint or a slow link, and dropping it loses
 * the login (the refresh token rotated on receipt). Five minutes outlasts any
 * such stall we have seen by far, yet ends a truly dead connection in a time
 * a person will wait; and with Kimi's 15-minute tokens refreshed at half life
 * (7.5 minutes left), the token in hand stays valid for the whole wait, so
 * serving it meanwhile costs nothing.
 */
export const DEFAULT_REFRESH_ANSWER_TIMEOUT = "5 minutes"

/**
 * How long a process waits for the token lock: `lockTimeout`, but never less
 * than what a live holder may take within its own deadlines, two refresh
 * requests (a rejected one re-read and sent again), each awaited for
 * `refreshAnswerTimeout`, and a save: `2 × refreshAnswerTimeout + 5 s`
 * (`2 × requestTimeout + 5 s` when no answer bound is given). A shorter wait
 * gave up on a holder still waiting for Kimi's answer, and then spent the
 * refresh token the holder had already sent.
 */
export const lockWaitFor = (
  settings: Pick<KimiAuthSettings, "lockTimeout" | "requestTimeout"> & {
    readonly refreshAnswerTimeout?: Duration.Duration | undefined
  }
): Duration.Duration =>
  Duration.max(
    settings.lockTimeout,
    Duration.sum(Duration.times(settings.refreshAnswerTimeout ?? settings.requestTimeout, 2), Duration.seconds(5))
  )

/**
 * The resolved configuration: endpoints (with whether an option or the
 * environment pinned them), storage paths, identity values and timings.
 */
export interface KimiAuthSettings extends PlainSettings {
  readonly refreshWindow: Duration.Duration
  readonly requestTimeout: Duration.Duration
  /** How long a sent refresh is awaited ({@link DEFAULT_REFRESH_ANSWER_TIMEOUT}); never less than `requestTimeout`. */
  readonly refreshAnswerTimeout: Duration.Duration
  readonly lockTimeout: Duration.Duration
  readonly staleLockAfter: Duration.Duration
  /**
   * The account these settings are for (its token file is `tokenFilePath`);
   * `undefined` for an explicit token file, or before any account exists.
   */
  readonly account?: Account | undefined
}

/**
 * Checks a base URL: it must parse, be `https:` (or `http:` on loopback), and
 * carry no credentials, query or fragment. Returns it without a trailing slash.
 */
export const validateBaseUrl = (name: string, raw: string): Effect.Effect<string, ConfigError> =>
  Effect.suspend(() => {
    const r = checkBaseUrl(name, raw)
    return r.ok ? Effect.succeed(r.value) : Effect.fail(new ConfigError({ message: r.message }))
  })

const optionalEnv = (name: string) => Config.option(Config.String(name))

const ENV_NAMES = [...ENV.oauthHost, ...ENV.apiBaseUrl, ...ENV.storageDir]

const duration = (name: string, input: Duration.Input | undefined, fallback: Duration.Input) =>
  Effect.suspend(() => {
    const d = Duration.fromInput(input ?? fallback)
    return Option.isSome(d) && Duration.isFinite(d.value) && Duration.toMillis(d.value) >= 0
      ? Effect.succeed(d.value)
      : Effect.fail(new ConfigError({ message: `The ${name} setting "${String(input)}" is not a duration. Give e.g. "30 seconds".` }))
  })

/** The refresh answer bound: the option, else the default, and never less than the request timeout. */
const answerTimeout = (options: KimiAuthOptions) =>
  Effect.zipWith(
    duration("refreshAnswerTimeout", options.refreshAnswerTimeout, DEFAULT_REFRESH_ANSWER_TIMEOUT),
    duration("requestTimeout", options.requestTimeout, "30 seconds"),
    (answer, request) => options.refreshAnswerTimeout === undefined ? Duration.max(answer, request) : answer
  )

/**
 * Resolves options, environment (read through Effect's `ConfigProvider`)
 * and the region's defaults into settings (see `ResolveSettings.ts` for the
 * rules), and chooses the account's token file (`accounts.json`, read
 * capped and non-blocking). Fails with {@link ConfigError} before any other
 * I/O when a value is unusable or a named account is unknown or ambiguous.
 */
export const resolve = (options: KimiAuthOptions = {}): Effect.Effect<KimiAuthSettings, ConfigError> =>
  Effect.gen(function*() {
    const env: Record<string, string | undefined> = {}
    for (const name of ENV_NAMES) {
      const value = yield* optionalEnv(name).pipe(Effect.orElseSucceed(() => Option.none<string>()))
      if (Option.isSome(value)) env[name] = value.value
    }
    const plain = resolveAccountSettings(options, env)
    if (!plain.ok) return yield* new ConfigError({ message: plain.message })
    return {
      ...plain.value,
      refreshWindow: yield* duration("refreshWindow", options.refreshWindow, "300 seconds"),
      requestTimeout: yield* duration("requestTimeout", options.requestTimeout, "30 seconds"),
      refreshAnswerTimeout: yield* answerTimeout(options),
      lockTimeout: yield* duration("lockTimeout", options.lockTimeout, "30 seconds"),
      staleLockAfter: yield* duration("staleLockAfter", options.staleLockAfter, "10 seconds")
    } satisfies KimiAuthSettings
  })

/**
 * The configuration service. Provide it with {@link KimiAuthConfig.layer}
 * (options, env, defaults) or {@link KimiAuthConfig.layerSettings} (already
 * resolved, for tests).
 */
export class KimiAuthConfig extends Context.Service<KimiAuthConfig, KimiAuthSettings>()(
  "opencode-kimi-auth/KimiAuthConfig"
) {
  /** Options beat env, env beats defaults. Fails with {@link ConfigError}. */
  static readonly layer = (options: KimiAuthOptions = {}): Layer.Layer<KimiAuthConfig, ConfigError> =>
    Layer.effect(KimiAuthConfig, resolve(options))

  /** Fixed settings. */
  static readonly layerSettings = (settings: KimiAuthSettings): Layer.Layer<KimiAuthConfig> =>
    Layer.succeed(KimiAuthConfig, settings)
}
