/**
 * Resolving options and environment into settings, as a pure function.
 *
 * The rules, first match wins: an explicit option; the environment
 * (`KIMI_CODE_OAUTH_HOST`, then `KIMI_OAUTH_HOST`, as kimi-cli reads them;
 * `KIMI_CODE_BASE_URL`; `OPENCODE_KIMI_AUTH_DIR`); the chosen region's
 * endpoints. Everything that comes from outside is checked here, before any
 * file is read or any request is made:
 *
 * - a URL must be `https:` (plain `http:` only on loopback, for the
 *   emulator), carry no user name or password (the credential is never
 *   echoed back), no query and no fragment;
 * - a storage folder or token file path must be absolute: a relative one
 *   would silently depend on the current folder (inside OpenCode, the
 *   project being edited);
 * - without one, the home folder must be known, absolute and existing (an
 *   empty or relative `HOME` is refused, as Go's `os.UserHomeDir` refuses an
 *   empty `$HOME`): the default storage folder is made inside an existing
 *   home, and a missing home is never created.
 *
 * It imports nothing from `effect`, so the CLI's fast path and the plugin's
 * thin entry can use it without loading the core; `KimiAuthConfig.resolve`
 * wraps it for Effect programs.
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { DEFAULT_REGION, isRegion, type KimiRegion, REGIONS } from "./Region.js"

/** Kimi's public OAuth client id (a public client: there is no secret). */
export const DEFAULT_CLIENT_ID = "17e5f671-d194-4dfb-9706-5516cb48c098"
/** The storage folder, below the home directory. */
export const DEFAULT_STORAGE_DIR_NAME = ".opencode-kimi-auth"
/**
 * Sent as `X-Msh-Platform`: Kimi For Coding serves coding agents only. `kimi_cli`, the
 * (archived) Python client's value, kept on purpose beside `DEFAULT_VERSION` and the
 * `KimiCLI/…` user agent: see `oauth/DeviceIdentity.ts` and docs/kimi.md for why, and
 * `KIMI_MSH_PLATFORM` / the `platform` option to send another.
 */
export const DEFAULT_PLATFORM = "kimi_cli"
/** Sent as `X-Msh-Version`. */
export const DEFAULT_VERSION = "1.0.0"

/** The environment variables read, in the order they are consulted. */
export const ENV = {
  oauthHost: ["KIMI_CODE_OAUTH_HOST", "KIMI_OAUTH_HOST"],
  apiBaseUrl: ["KIMI_CODE_BASE_URL"],
  storageDir: ["OPENCODE_KIMI_AUTH_DIR"],
  platform: ["KIMI_MSH_PLATFORM"]
} as const

/** The options that decide endpoints, storage and identity (durations are resolved by the Effect wrapper). */
export interface SettingsOptions {
  /** Region: picks the default OAuth host and API base. Default `mainland-cn`. */
  readonly region?: KimiRegion | undefined
  readonly oauthHost?: string | undefined
  readonly apiBaseUrl?: string | undefined
  readonly clientId?: string | undefined
  readonly storageDir?: string | undefined
  readonly tokenFilePath?: string | undefined
  readonly platform?: string | undefined
  readonly version?: string | undefined
  readonly userAgent?: string | undefined
}

/** Settings without durations: endpoints, storage paths, identity values. */
export interface PlainSettings {
  readonly region: KimiRegion
  readonly oauthHost: string
  /** True when an option or the environment set the OAuth host: it then beats the host stored with a login. */
  readonly oauthHostPinned: boolean
  readonly apiBaseUrl: string
  /** True when an option or the environment set the API base. */
  readonly apiBaseUrlPinned: boolean
  readonly clientId: string
  readonly storageDir: string
  readonly tokenFilePath: string
  readonly deviceIdPath: string
  readonly lockPath: string
  readonly platform: string
  readonly version: string
  readonly userAgent: string
}

/** A value, or a message saying what is wrong and how to fix it. */
export type Resolved<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly message: string }

/** The environment as a plain record (`process.env` fits). */
export type Env = Readonly<Record<string, string | undefined>>

const isLoopback = (hostname: string): boolean => {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase()
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h)
}

/** `raw` with any `user:password@` replaced, for messages: a credential is never echoed. */
const withoutCredentials = (raw: string): string => raw.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1<credentials>@")

/**
 * Checks a base URL: it must parse, be `https:` (or `http:` on loopback),
 * and carry no credentials, query or fragment. Returns it without a trailing
 * slash. `name` starts the message ("The Kimi OAuth host"); `example` is the
 * URL a "not a URL" message offers (the OAuth host unless told).
 */
export const checkBaseUrl = (name: string, raw: string, example = "https://auth.kimi.com"): Resolved<string> => {
  const shown = withoutCredentials(raw)
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { ok: false, message: `${name} "${shown}" is not a URL. Give a full URL such as ${example}.` }
  }
  if (url.username !== "" || url.password !== "") {
    return {
      ok: false,
      message: `${name} "${withoutCredentials(url.href)}" carries a user name or password. ` +
        `Remove the "user:password@" part: Kimi takes no credentials in the URL, and they would be sent and logged.`
    }
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return { ok: false, message: `${name} must be an https URL, got "${url.protocol}".` }
  }
  if (url.protocol === "http:" && !isLoopback(url.hostname)) {
    return {
      ok: false,
      message: `${name} "${shown}" uses plain http on a non-loopback host, which would send tokens in clear. ` +
        `Use https, or http only on 127.0.0.1 / localhost / [::1] (for the local emulator).`
    }
  }
  if (url.search || url.hash) return { ok: false, message: `${name} "${shown}" must not carry a query or fragment.` }
  return { ok: true, value: url.toString().replace(/\/+$/, "") }
}

const nonBlank = (s: string | undefined): string | undefined => (s !== undefined && s.trim() !== "" ? s.trim() : undefined)

const fromEnv = (env: Env, names: ReadonlyArray<string>): { readonly value: string; readonly name: string } | undefined => {
  for (const name of names) {
    const value = nonBlank(env[name])
    if (value !== undefined) return { value, name }
  }
  return undefined
}

/** An example absolute storage folder for messages: in the home folder when that is usable. */
const exampleStorageDir = () => {
  const home = homeFolder()
  return path.isAbsolute(home) ? path.join(home, DEFAULT_STORAGE_DIR_NAME) : `/home/you/${DEFAULT_STORAGE_DIR_NAME}`
}

const checkAbsolute = (what: string, source: string, p: string): Resolved<string> =>
  path.isAbsolute(p)
    ? { ok: true, value: path.normalize(p) }
    : {
      ok: false,
      message: `${what} "${p}" (${source}) is a relative path, which would depend on the current folder. ` +
        `Give an absolute path, such as ${exampleStorageDir()}.`
    }

/** The variable the home folder comes from on this platform. */
const HOME_VAR = process.platform === "win32" ? "USERPROFILE" : "HOME"

/**
 * The home folder as the environment gives it: `$HOME` whenever the variable
 * exists, even empty, else `os.homedir()` (the password database); on Windows
 * `os.homedir()` (`USERPROFILE`). Read here rather than through
 * `os.homedir()` alone because the runtimes differ: for an empty `$HOME`
 * Node's answers `""` and Bun's (OpenCode's runtime) the password database's
 * folder, so the same empty `$HOME` was refused under Node and silently
 * replaced under Bun.
 */
export const homeFolder = (env: Env = process.env): string =>
  process.platform !== "win32" && env["HOME"] !== undefined ? env["HOME"] : os.homedir()

/**
 * Checks the home folder the default storage folder goes in (`home` is
 * `os.homedir()`: `$HOME` when set, else the password database): it must be
 * non-empty, absolute and an existing folder. One `stat`, no other I/O; the
 * message names what to set.
 */
export const checkHome = (home: string): Resolved<string> => {
  const fix = `Set ${HOME_VAR} to your home folder, or OPENCODE_KIMI_AUTH_DIR (the storageDir option) to an absolute ` +
    `folder for the tokens.`
  if (home.trim() === "") {
    return {
      ok: false,
      message: `Your home folder is not known: ${HOME_VAR} is empty, so the tokens would be saved in the current folder ` +
        `(inside a project, ready to be committed). ${fix}`
    }
  }
  if (!path.isAbsolute(home)) {
    return {
      ok: false,
      message: `Your home folder "${home}" (${HOME_VAR}) is a relative path, so the tokens would be saved below the ` +
        `current folder. ${fix}`
    }
  }
  let st: fs.Stats | undefined
  try {
    st = fs.statSync(home)
  } catch {
    st = undefined
  }
  if (st === undefined || !st.isDirectory()) {
    return {
      ok: false,
      message: `Your home folder ${home} (${HOME_VAR}) ${st === undefined ? "does not exist" : "is not a folder"}; ` +
        `it is never created for you. ${fix}`
    }
  }
  return { ok: true, value: path.normalize(home) }
}

/**
 * Resolves options, then `env`, then the region's defaults. Pure but for
 * `os.homedir()` and one `stat` of it when no storage folder is given.
 */
export const resolveSettings = (options: SettingsOptions = {}, env: Env = {}): Resolved<PlainSettings> => {
  if (options.region !== undefined && !isRegion(options.region)) {
    return { ok: false, message: `Unknown Kimi region "${String(options.region)}". Use "mainland-cn" (kimi.com) or "global" (kimi.ai).` }
  }
  const region = options.region ?? DEFAULT_REGION
  const defaults = REGIONS[region]

  const hostOption = nonBlank(options.oauthHost)
  const hostEnv = hostOption === undefined ? fromEnv(env, ENV.oauthHost) : undefined
  const oauthHost = checkBaseUrl(
    hostEnv ? `The Kimi OAuth host (${hostEnv.name})` : "The Kimi OAuth host",
    hostOption ?? hostEnv?.value ?? defaults.oauthHost,
    defaults.oauthHost
  )
  if (!oauthHost.ok) return oauthHost

  const apiOption = nonBlank(options.apiBaseUrl)
  const apiEnv = apiOption === undefined ? fromEnv(env, ENV.apiBaseUrl) : undefined
  const apiBaseUrl = checkBaseUrl(
    apiEnv ? `The Kimi API base URL (${apiEnv.name})` : "The Kimi API base URL",
    apiOption ?? apiEnv?.value ?? defaults.apiBaseUrl,
    defaults.apiBaseUrl
  )
  if (!apiBaseUrl.ok) return apiBaseUrl

  const dirOption = nonBlank(options.storageDir)
  const dirEnv = dirOption === undefined ? fromEnv(env, ENV.storageDir) : undefined
  const dirGiven = dirOption ?? dirEnv?.value
  const fileGiven = nonBlank(options.tokenFilePath)
  let storageDir: string
  if (dirGiven !== undefined) {
    const checked = checkAbsolute("The storage folder", dirEnv ? dirEnv.name : "the storageDir option", dirGiven)
    if (!checked.ok) return checked
    storageDir = checked.value
  } else if (fileGiven !== undefined) {
    storageDir = "" // replaced by the token file's folder below; the home folder is not needed
  } else {
    const home = checkHome(homeFolder())
    if (!home.ok) return home
    storageDir = path.join(home.value, DEFAULT_STORAGE_DIR_NAME)
  }
  let tokenFilePath = path.join(storageDir, "oauth.json")
  if (fileGiven !== undefined) {
    const checked = checkAbsolute("The token file path", "the tokenFilePath option", fileGiven)
    if (!checked.ok) return checked
    tokenFilePath = checked.value
  }
  const dir = path.dirname(tokenFilePath)
  const version = nonBlank(options.version) ?? DEFAULT_VERSION
  return {
    ok: true,
    value: {
      region,
      oauthHost: oauthHost.value,
      oauthHostPinned: hostOption !== undefined || hostEnv !== undefined,
      apiBaseUrl: apiBaseUrl.value,
      apiBaseUrlPinned: apiOption !== undefined || apiEnv !== undefined,
      clientId: nonBlank(options.clientId) ?? DEFAULT_CLIENT_ID,
      storageDir: dir,
      tokenFilePath,
      deviceIdPath: path.join(dir, "device_id"),
      lockPath: `${tokenFilePath}.lock`,
      platform: options.platform ?? fromEnv(env, ENV.platform)?.value ?? DEFAULT_PLATFORM,
      version,
      userAgent: options.userAgent ?? `KimiCLI/${version}`
    }
  }
}

/** Who issued a login: the hosts stored with its tokens, when known. */
export interface Issuer {
  readonly oauthHost?: string | undefined
  readonly apiBaseUrl?: string | undefined
}

/**
 * The OAuth host and API base to use for a login: a host pinned by an option
 * or the environment wins; else the one stored with the login (a login is
 * only good at the region that issued it); else the settings' region.
 */
export const issuerFor = (
  settings: Pick<PlainSettings, "oauthHost" | "oauthHostPinned" | "apiBaseUrl" | "apiBaseUrlPinned">,
  stored: Issuer | undefined
): { readonly oauthHost: string; readonly apiBaseUrl: string } => ({
  oauthHost: settings.oauthHostPinned ? settings.oauthHost : stored?.oauthHost ?? settings.oauthHost,
  apiBaseUrl: settings.apiBaseUrlPinned ? settings.apiBaseUrl : stored?.apiBaseUrl ?? settings.apiBaseUrl
})
