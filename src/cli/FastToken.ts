/**
 * `kimi-auth token` without the Effect runtime, for the common case: a valid
 * access token on disk that is not due for refresh. Shell scripts run
 * `$(kimi-auth token)` before every call, so this path reads one small file
 * with the same effect-free rules the core uses (`resolveSettings`,
 * `parseTokenFileText`, `isDueAt`) and prints the token.
 *
 * It answers only when the full command would print the same token without a
 * request, a write or a message; anything else (a configuration error, no
 * file, a file it cannot parse, a token that is due, loose file modes the
 * store would repair, a missing device id, debug logging) returns
 * `undefined` and the caller runs the full command, which says what is wrong.
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { type Env, resolveSettings } from "../ResolveSettings.js"
import { isBearerToken, isDueAt, parseTokenFileText } from "../TokenValidation.js"

/** The CLI's refresh window: `KimiAuthConfig`'s default `refreshWindow` (the CLI passes no option). */
export const DEFAULT_REFRESH_WINDOW_SECONDS = 300

/** Group or other access: the token store would tighten such a mode (and warn), so the full command must run. */
const loose = (mode: number) => process.platform !== "win32" && (mode & 0o077) !== 0

/**
 * The stored access token when it is valid and not due at `nowMillis`, read
 * the way the full `kimi-auth token` reads it; `undefined` when the full
 * command must decide. Never throws, never prints.
 */
export const fastToken = (env: Env, nowMillis: number): string | undefined => {
  if ((env["DEBUG"] ?? "").trim() !== "") return undefined
  const settings = resolveSettings({}, env)
  if (!settings.ok) return undefined
  const { tokenFilePath, deviceIdPath } = settings.value
  try {
    const file = fs.statSync(tokenFilePath)
    if (!file.isFile() || loose(file.mode) || loose(fs.statSync(path.dirname(tokenFilePath)).mode)) return undefined
    if (!fs.statSync(deviceIdPath).isFile()) return undefined
    const parsed = parseTokenFileText(fs.readFileSync(tokenFilePath, "utf8"))
    if (!parsed.ok || !isBearerToken(parsed.value.accessToken)) return undefined
    const { accessToken, expiresAt, expiresIn } = parsed.value
    return isDueAt(expiresAt, expiresIn, nowMillis / 1000, DEFAULT_REFRESH_WINDOW_SECONDS) ? undefined : accessToken
  } catch {
    return undefined
  }
}
