/**
 * Where opencode-kimi-auth talks to and where it keeps its files.
 *
 * Built from explicit options first, then the environment (`KIMI_OAUTH_HOST`,
 * `KIMI_CODE_OAUTH_HOST`, `KIMI_CODE_BASE_URL`, `OPENCODE_KIMI_AUTH_DIR`),
 * then defaults that match Kimi's own clients. A plain-`http:` OAuth host is
 * refused unless it is on loopback: tokens must never cross a network in clear.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as os from "node:os"
import * as path from "node:path"
import { ConfigError } from "./Errors.js"

/** Kimi's public OAuth client id (a public client: there is no secret). */
export const DEFAULT_CLIENT_ID = "17e5f671-d194-4dfb-9706-5516cb48c098"
/** Kimi's OAuth host. */
export const DEFAULT_OAUTH_HOST = "https://auth.kimi.com"
/** The Kimi For Coding API base. */
export const DEFAULT_API_BASE_URL = "https://api.kimi.com/coding/v1"
/** The storage folder, below the home directory. */
export const DEFAULT_STORAGE_DIR_NAME = ".opencode-kimi-auth"
/** Sent as `X-Msh-Platform`: Kimi For Coding serves coding agents only. */
export const DEFAULT_PLATFORM = "kimi_cli"
/** Sent as `X-Msh-Version`. */
export const DEFAULT_VERSION = "1.0.0"

/** Options accepted by {@link KimiAuthConfig.layer}; each beats the environment. */
export interface KimiAuthOptions {
  /** OAuth host, e.g. `https://auth.kimi.com`. Env: `KIMI_OAUTH_HOST` / `KIMI_CODE_OAUTH_HOST`. */
  readonly oauthHost?: string | undefined
  /** API base, e.g. `https://api.kimi.com/coding/v1`. Env: `KIMI_CODE_BASE_URL`. */
  readonly apiBaseUrl?: string | undefined
  /** OAuth client id. */
  readonly clientId?: string | undefined
  /** Folder for `oauth.json`, `device_id` and the lock. Env: `OPENCODE_KIMI_AUTH_DIR`. */
  readonly storageDir?: string | undefined
  /** Token file path; defaults to `<storageDir>/oauth.json`. */
  readonly tokenFilePath?: string | undefined
  /** `X-Msh-Platform`. */
  readonly platform?: string | undefined
  /** `X-Msh-Version`. */
  readonly version?: string | undefined
  /** `User-Agent` on OAuth and API calls; defaults to `KimiCLI/<version>`. */
  readonly userAgent?: string | undefined
  /** Refresh when less than this much lifetime remains (capped for short-lived tokens). Default 300 s. */
  readonly refreshWindow?: Duration.Input | undefined
  /** Timeout of each HTTP request. Default 30 s. */
  readonly requestTimeout?: Duration.Input | undefined
  /** Longest wait for the cross-process refresh lock. Default 30 s. */
  readonly lockTimeout?: Duration.Input | undefined
  /** A lock older than this whose holder cannot be seen alive is taken over. Default 10 s. */
  readonly staleLockAfter?: Duration.Input | undefined
}

/** The resolved configuration. */
export interface KimiAuthSettings {
  readonly oauthHost: string
  readonly apiBaseUrl: string
  readonly clientId: string
  readonly storageDir: string
  readonly tokenFilePath: string
  readonly deviceIdPath: string
  readonly lockPath: string
  readonly platform: string
  readonly version: string
  readonly userAgent: string
  readonly refreshWindow: Duration.Duration
  readonly requestTimeout: Duration.Duration
  readonly lockTimeout: Duration.Duration
  readonly staleLockAfter: Duration.Duration
}

const isLoopback = (hostname: string): boolean => {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h)
}

/**
 * Checks a base URL: it must parse, be `https:` (or `http:` on loopback), and
 * carry no query or fragment. Returns it without a trailing slash.
 */
export const validateBaseUrl = (name: string, raw: string): Effect.Effect<string, ConfigError> =>
  Effect.suspend(() => {
    let url: URL
    try {
      url = new URL(raw)
    } catch {
      return Effect.fail(
        new ConfigError({ message: `${name} "${raw}" is not a URL. Give a full URL such as https://auth.kimi.com.` })
      )
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      return Effect.fail(new ConfigError({ message: `${name} must be an https URL, got "${url.protocol}".` }))
    }
    if (url.protocol === "http:" && !isLoopback(url.hostname)) {
      return Effect.fail(
        new ConfigError({
          message: `${name} "${raw}" uses plain http on a non-loopback host, which would send tokens in clear. ` +
            `Use https, or http only on 127.0.0.1 / localhost / [::1] (for the local emulator).`
        })
      )
    }
    if (url.search || url.hash) {
      return Effect.fail(new ConfigError({ message: `${name} "${raw}" must not carry a query or fragment.` }))
    }
    return Effect.succeed(url.toString().replace(/\/+$/, ""))
  })

const optionalEnv = (name: string) => Config.option(Config.String(name))

/**
 * Resolves options, environment and defaults into settings. Fails with
 * {@link ConfigError} when a URL is unusable.
 */
export const resolve = (options: KimiAuthOptions = {}): Effect.Effect<KimiAuthSettings, ConfigError> =>
  Effect.gen(function*() {
    const env = yield* Config.all({
      oauthHost: optionalEnv("KIMI_OAUTH_HOST"),
      codeOauthHost: optionalEnv("KIMI_CODE_OAUTH_HOST"),
      apiBaseUrl: optionalEnv("KIMI_CODE_BASE_URL"),
      storageDir: optionalEnv("OPENCODE_KIMI_AUTH_DIR")
    }).pipe(Effect.orElseSucceed(() => ({
      oauthHost: Option.none<string>(),
      codeOauthHost: Option.none<string>(),
      apiBaseUrl: Option.none<string>(),
      storageDir: Option.none<string>()
    })))
    const pick = (explicit: string | undefined, ...fallbacks: Array<Option.Option<string>>) => {
      if (explicit !== undefined && explicit.trim() !== "") return explicit.trim()
      for (const o of fallbacks) if (Option.isSome(o) && o.value.trim() !== "") return o.value.trim()
      return undefined
    }
    const oauthHost = yield* validateBaseUrl(
      "The Kimi OAuth host",
      pick(options.oauthHost, env.oauthHost, env.codeOauthHost) ?? DEFAULT_OAUTH_HOST
    )
    const apiBaseUrl = yield* validateBaseUrl(
      "The Kimi API base URL",
      pick(options.apiBaseUrl, env.apiBaseUrl) ?? DEFAULT_API_BASE_URL
    )
    const storageDir = path.resolve(
      pick(options.storageDir, env.storageDir) ?? path.join(os.homedir(), DEFAULT_STORAGE_DIR_NAME)
    )
    const tokenFilePath = options.tokenFilePath ? path.resolve(options.tokenFilePath) : path.join(storageDir, "oauth.json")
    const dir = path.dirname(tokenFilePath)
    const version = options.version ?? DEFAULT_VERSION
    const clientId = options.clientId?.trim() || DEFAULT_CLIENT_ID
    return {
      oauthHost,
      apiBaseUrl,
      clientId,
      storageDir: dir,
      tokenFilePath,
      deviceIdPath: path.join(dir, "device_id"),
      lockPath: `${tokenFilePath}.lock`,
      platform: options.platform ?? DEFAULT_PLATFORM,
      version,
      userAgent: options.userAgent ?? `KimiCLI/${version}`,
      refreshWindow: Duration.fromInputUnsafe(options.refreshWindow ?? "300 seconds"),
      requestTimeout: Duration.fromInputUnsafe(options.requestTimeout ?? "30 seconds"),
      lockTimeout: Duration.fromInputUnsafe(options.lockTimeout ?? "30 seconds"),
      staleLockAfter: Duration.fromInputUnsafe(options.staleLockAfter ?? "10 seconds")
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
