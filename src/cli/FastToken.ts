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
import * as fs from "node:fs"
import * as path from "node:path"
import { debugFromEnv } from "../light/Debug.js"
import { resolveAccountSettings } from "../light/AccountSettings.js"
import type { Env } from "../light/ResolveSettings.js"
import { readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import { isDueAt, parseTokenFileText } from "../light/TokenValidation.js"

/** The CLI's refresh window: `KimiAuthConfig`'s default `refreshWindow` (the CLI passes no option). */
export const DEFAULT_REFRESH_WINDOW_SECONDS = 300

const posix = process.platform !== "win32"
const myUid = () => (typeof process.getuid === "function" ? process.getuid() : -1)

/**
 * Whether the full command would take `st` as it is, without a repair, a
 * warning or a refusal (StoragePermissions.ts): not a link, ours, and no
 * group or other access. Anything else falls through, so the store decides.
 */
export const plainAndOurs = (st: fs.Stats, directory: boolean) =>
  (directory ? st.isDirectory() : st.isFile()) && (!posix || (st.uid === myUid() && (st.mode & 0o077) === 0))

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
  const { tokenFilePath, deviceIdPath } = settings.value
  try {
    // lstat: a link is never followed here; the full command explains what it refuses.
    if (!plainAndOurs(fs.lstatSync(tokenFilePath), false) || !plainAndOurs(fs.lstatSync(path.dirname(tokenFilePath)), true)) {
      return undefined
    }
    if (!fs.lstatSync(deviceIdPath).isFile()) return undefined
    // The parser refuses any token that is not an RFC 6750 bearer token: nothing invalid is ever printed.
    // Capped: a huge file is left to the full command, which moves it aside and says so.
    const found = readSmallFileSync(tokenFilePath, TOKEN_FILE_LIMIT_BYTES)
    if (found._tag !== "Text") return undefined
    const parsed = parseTokenFileText(found.text)
    if (!parsed.ok) return undefined
    const { accessToken, expiresAt, expiresIn } = parsed.value
    return isDueAt(expiresAt, expiresIn, nowMillis / 1000, DEFAULT_REFRESH_WINDOW_SECONDS) ? undefined : accessToken
  } catch {
    return undefined
  }
}
