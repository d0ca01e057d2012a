/**
 * The OpenCode 2 request hooks' fast path: the stored access token and the
 * identity headers read without the Effect core (`light/`), so a run whose
 * login is valid and not due never imports the core (issue 21, "Cost").
 *
 * It answers only what the core would answer without a request, a write or a
 * message (`light/StoredLogin.ts`); anything else is `undefined`, and the
 * hook asks the core, which refreshes under the lock or says what is wrong.
 *
 * @since 0.2.0
 */
import { identityHeaders, peekDeviceIdSync } from "../light/Identity.js"
import type { KimiRegion } from "../light/Region.js"
import { resolveAccountSettings } from "../light/AccountSettings.js"
import type { PlainSettings, SettingsOptions } from "../light/ResolveSettings.js"
import { readStoredLogin } from "../light/StoredLogin.js"

/** The core's default refresh window; a plugin configured with its own window always asks the core. */
const WINDOW_SECONDS = 300

/** A valid access token and the identity headers to send it with. */
export interface FastAuth {
  readonly token: string
  readonly headers: Readonly<Record<string, string>>
}

/** The fast path of one region. */
export interface FastPath {
  /** The stored token when the core would hand it out as is, with the identity headers; else `undefined`. */
  readonly auth: (nowMillis: number) => FastAuth | undefined
  /** The identity headers when the device id is stored; else `undefined` (the core plans one). */
  readonly identity: () => Readonly<Record<string, string>> | undefined
  /** The resolved settings, when they resolve. */
  readonly settings: PlainSettings | undefined
}

/**
 * Whether a stored login may be served to `region` as it is: the core refuses a login made at the
 * other region (with its message), and a login recorded for another issuer is left to the core.
 */
export const servesAsIs = (
  login: { readonly region: KimiRegion | undefined; readonly oauthHost: string | undefined; readonly apiBaseUrl: string | undefined },
  settings: Pick<PlainSettings, "oauthHost" | "apiBaseUrl">,
  region: KimiRegion
): boolean =>
  (login.region === undefined || login.region === region) &&
  (login.oauthHost === undefined || login.oauthHost === settings.oauthHost) &&
  (login.apiBaseUrl === undefined || login.apiBaseUrl === settings.apiBaseUrl)

/** The fast path for one region's provider, over the plugin options. */
export const makeFastPath = (
  options: SettingsOptions & { readonly refreshWindow?: unknown },
  region: KimiRegion,
  env: Readonly<Record<string, string | undefined>> = process.env
): FastPath => {
  // The account the core would use: the token file given, else the region's active account (accounts.json).
  const resolved = resolveAccountSettings({ ...options, region }, env)
  if (!resolved.ok || options.refreshWindow !== undefined) {
    return { auth: () => undefined, identity: () => undefined, settings: resolved.ok ? resolved.value : undefined }
  }
  const settings = resolved.value
  let cached: { readonly deviceId: string; readonly headers: Readonly<Record<string, string>> } | undefined
  const identity = () => {
    const deviceId = peekDeviceIdSync(settings.deviceIdPath)
    if (deviceId === undefined) return undefined
    if (cached?.deviceId !== deviceId) cached = { deviceId, headers: identityHeaders(settings, deviceId) }
    return cached.headers
  }
  return {
    settings,
    identity,
    auth: (nowMillis) => {
      const login = readStoredLogin(settings, nowMillis, WINDOW_SECONDS)
      if (login === undefined || !servesAsIs(login, settings, region)) return undefined
      const headers = identity()
      return headers === undefined ? undefined : { token: login.accessToken, headers }
    }
  }
}
