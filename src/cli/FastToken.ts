/**
 * `kimi-auth token` without the Effect runtime, for the common case: a valid
 * access token on disk that is not due for refresh. Shell scripts run
 * `$(kimi-auth token)` before every call, so this path reads one small file
 * with the same effect-free rules the core uses (`resolveAccountSettings`:
 * the current account's file; `parseTokenFileText`, `isDueAt`) and prints
 * the token.
 *
 * It answers only when the full command would print the same token without a
 * request, a write or a message; anything else (a configuration error, no
 * file, a file it cannot parse, a token that is due, a link, a file or folder
 * of another user, loose modes the store would repair or refuse, a missing device id, `DEBUG` naming this package) returns
 * `undefined` and the caller runs the full command, which says what is wrong.
 *
 * @since 0.2.0
 */
import { debugFromEnv } from "../light/Debug.js"
import { resolveAccountSettings } from "../light/AccountSettings.js"
import type { Env } from "../light/ResolveSettings.js"
import { readStoredLogin } from "../light/StoredLogin.js"

export { plainAndOurs } from "../light/StoredLogin.js"

/** The CLI's refresh window: `KimiAuthConfig`'s default `refreshWindow` (the CLI passes no option). */
export const DEFAULT_REFRESH_WINDOW_SECONDS = 300

/**
 * The stored access token when it is valid and not due at `nowMillis`, read
 * the way the full `kimi-auth token` reads it; `undefined` when the full
 * command must decide. Never throws, never prints.
 */
export const fastToken = (env: Env, nowMillis: number): string | undefined => {
  if (debugFromEnv(env)) return undefined
  // The account the full command would use: the current one (`accounts.json`, read Effect-free).
  const settings = resolveAccountSettings({}, env)
  if (!settings.ok) return undefined
  return readStoredLogin(settings.value, nowMillis, DEFAULT_REFRESH_WINDOW_SECONDS)?.accessToken
}
