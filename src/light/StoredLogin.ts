/**
 * The stored login read without the Effect runtime, for the hot paths that
 * only need a valid access token that is not due: `kimi-auth token`
 * (`cli/FastToken.ts`) and the OpenCode 2 request hooks (`opencode/V2Fast.ts`).
 *
 * It answers only when the full path would hand out the same token without a
 * request, a write or a message; anything else (no file, a file it cannot
 * parse, a due token, a link, a file or folder of another user, loose modes
 * the store would repair or refuse, a missing device id) is `undefined`, and
 * the caller takes the full path, which decides and says what is wrong.
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { PlainSettings } from "./ResolveSettings.js"
import { type FileStat, readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "./SmallFile.js"
import { isDueAt, parseTokenFileText, type PlainTokenFile } from "./TokenValidation.js"

const posix = process.platform !== "win32"
const myUid = () => (typeof process.getuid === "function" ? process.getuid() : -1)

/**
 * Whether the full path would take `st` as it is, without a repair, a
 * warning or a refusal (StoragePermissions.ts): not a link, ours, and no
 * group or other access.
 */
export const plainAndOurs = (st: FileStat, directory: boolean): boolean =>
  (directory ? st.isDirectory() : st.isFile()) && (!posix || (st.uid === myUid() && (st.mode & 0o077) === 0))

/**
 * The stored login when its access token is valid and not due at
 * `nowMillis` (refresh window `windowSeconds`), read the way the full path
 * reads it; `undefined` when the full path must decide. Never throws.
 */
export const readStoredLogin = (
  settings: Pick<PlainSettings, "tokenFilePath" | "deviceIdPath">,
  nowMillis: number,
  windowSeconds: number
): PlainTokenFile | undefined => {
  const { tokenFilePath, deviceIdPath } = settings
  try {
    // lstat: a link is never followed here; the full path explains what it refuses.
    if (!plainAndOurs(fs.lstatSync(tokenFilePath), false) || !plainAndOurs(fs.lstatSync(path.dirname(tokenFilePath)), true)) {
      return undefined
    }
    if (!fs.lstatSync(deviceIdPath).isFile()) return undefined
    // The parser refuses any token that is not an RFC 6750 bearer token.
    // Capped: a huge file is left to the full path, which moves it aside and says so.
    const found = readSmallFileSync(tokenFilePath, TOKEN_FILE_LIMIT_BYTES)
    if (found._tag !== "Text") return undefined
    const parsed = parseTokenFileText(found.text)
    if (!parsed.ok) return undefined
    const { expiresAt, expiresIn } = parsed.value
    return isDueAt(expiresAt, expiresIn, nowMillis / 1000, windowSeconds) ? undefined : parsed.value
  } catch {
    return undefined
  }
}
