/**
 * Whether the plugin takes OpenCode's stored copy of the login (`auth.json`,
 * which the V1 plugin mirrors the tokens into) into its empty token store.
 *
 * A copy is a snapshot: the package may have rotated its refresh token since
 * (the CLI and the facade never update `auth.json`). Refreshing a spent
 * refresh token is a replay, and Kimi answers a replay by revoking the whole
 * login, including the live one the user may still have in a token file moved
 * aside. So a copy is adopted only when nothing says it is stale:
 *
 * - never over a stored login (`"kept"`);
 * - never a login the user logged out of (`"logged-out"`, `logged-out.json`);
 * - never one whose refresh token this store spent (`"spent"`,
 *   `oauth.json.spent`), nor any while that list cannot be read
 *   (`"spent-unknown"`: fails closed);
 * - never one older than a damaged token file moved aside
 *   (`oauth.json.corrupt-*`): `"superseded"`. The moved file's last write is
 *   its last save; a copy whose access token had expired by then predates that
 *   save, so its refresh token was most likely rotated away by it (or
 *   belongs to an earlier login). This catches what the spent list cannot:
 *   rotations by releases that kept no list, or a list that could not be
 *   written. A copy newer than the moved file (a login made since) is adopted.
 *
 * Every decision is a pure function, tested as a table
 * (test/opencode-unit/PluginCore.decisions.test.ts); the file reads are the
 * two small functions at the end.
 *
 * @since 0.2.0
 */
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import * as Redacted from "effect/Redacted"
import type { KimiRegion } from "../light/Region.js"
import type { TokenFailure } from "../request/ManagedTokenSource.js"
import { spentNotePath, type SpentVerdict } from "../storage/SpentRefreshTokens.js"
import { TokenSet } from "../tokens/TokenSet.js"

/** An `auth.json` OAuth entry as OpenCode keeps it. */
export interface OAuthEntry {
  readonly type: "oauth"
  readonly refresh: string
  readonly access: string
  /** Epoch milliseconds. */
  readonly expires: number
}

/** Whether an `auth.json` entry carries a login worth adopting (a refresh token and an access token). */
export const isAdoptableEntry = (entry: OAuthEntry): boolean =>
  typeof entry.refresh === "string" && entry.refresh !== "" && typeof entry.access === "string"

/** What adopting OpenCode's stored copy comes to (see the module comment). */
export type AdoptOutcome = "kept" | "logged-out" | "spent" | "spent-unknown" | "superseded" | "adopted"

/**
 * Whether to adopt OpenCode's stored copy: never over a stored login
 * (`"kept"`), never a login the user logged out of (`"logged-out"`), never
 * one whose refresh token was spent or may have been (`"spent"`,
 * `"spent-unknown"`), never one older than a moved-aside token file
 * (`"superseded"`); else `"adopted"`. Each check is read only when the ones
 * before it pass.
 */
export const adoptRule = (
  hasStoredLogin: boolean,
  copyLoggedOut: () => boolean,
  copySpent: () => SpentVerdict = () => "unspent",
  copySuperseded: () => boolean = () => false
): AdoptOutcome => {
  if (hasStoredLogin) return "kept"
  if (copyLoggedOut()) return "logged-out"
  const spent = copySpent()
  if (spent !== "unspent") return spent === "spent" ? "spent" : "spent-unknown"
  return copySuperseded() ? "superseded" : "adopted"
}

/**
 * Whether a copy whose access token expires at `copyExpiresMillis` is older
 * than a token file moved aside whose last write was at `movedAtMillis`
 * (none moved: `undefined`): its access token had expired by that write.
 */
export const supersededByMoved = (copyExpiresMillis: number, movedAtMillis: number | undefined): boolean =>
  movedAtMillis !== undefined && !(copyExpiresMillis > movedAtMillis)

/** The token set an adopted `auth.json` entry becomes (its expiry in epoch seconds, lifetime from `nowMillis`). */
export const tokenSetFromEntry = (entry: OAuthEntry, region: KimiRegion, nowMillis: number): TokenSet => {
  const expiresAt = Math.floor(entry.expires / 1000)
  return new TokenSet({
    accessToken: Redacted.make(entry.access),
    refreshToken: Redacted.make(entry.refresh),
    tokenType: "Bearer",
    expiresIn: Math.max(0, expiresAt - Math.floor(nowMillis / 1000)),
    scope: "",
    expiresAt,
    region
  })
}

/** The debug line for an adoption's outcome (no token in it). */
export const adoptLogLine = (outcome: AdoptOutcome, providerId: string, storePath: string): string => {
  switch (outcome) {
    case "logged-out":
      return `plugin: OpenCode's stored login for ${providerId} is one the user logged out of; not adopted`
    case "adopted":
      return `plugin: adopted OpenCode's stored login for ${providerId} into ${storePath}`
    case "kept":
      return `plugin: a login is already stored; OpenCode's copy for ${providerId} is not needed`
    case "spent":
    case "spent-unknown":
    case "superseded":
      return `plugin: OpenCode's stored login for ${providerId} may hold a spent refresh token (${outcome}); not adopted`
  }
}

/** Where the refusal of a copy points the user: the token file, its spent list, and the newest moved-aside file. */
export interface AdoptionPaths {
  readonly tokenFilePath: string
  readonly movedAside?: string | undefined
}

/**
 * What the user is told when a copy was not adopted because it may be spent
 * (`undefined` for the other outcomes): what happened, why, and how to log
 * in again (`loginHint`, e.g. "run `opencode auth login -p …`").
 */
export const notAdoptedMessage = (
  outcome: AdoptOutcome,
  providerId: string,
  loginHint: string,
  paths: AdoptionPaths
): string | undefined => {
  const copy = `OpenCode's stored copy of the Kimi login (${providerId}, in auth.json) was not used`
  const replay = "sending it would be a replay, and Kimi answers a replay by revoking the whole login"
  switch (outcome) {
    case "spent":
      return `${copy}: its refresh token was already spent by a refresh (it is listed in ${spentNotePath(paths.tokenFilePath)}), ` +
        `and ${replay}. If you moved ${paths.tokenFilePath} away, put it back; otherwise log in again: ${loginHint}.`
    case "spent-unknown":
      return `${copy}: the list of spent refresh tokens, ${spentNotePath(paths.tokenFilePath)}, cannot be read, so it ` +
        `cannot be told whether the copy is stale (${replay}). Remove or fix that file, or log in again: ${loginHint}.`
    case "superseded":
      return `${copy}: it is older than the damaged token file moved aside to ${paths.movedAside ?? "a .corrupt file"}, ` +
        `so its refresh token was most likely spent since, and ${replay}. Log in again: ${loginHint}.`
    default:
      return undefined
  }
}

/** A "login required" failure with the note of a copy not adopted appended; any other failure as it was. */
export const withAdoptionNote = (failure: TokenFailure, note: string | undefined): TokenFailure =>
  note !== undefined && failure.code === "kimi_login_required" ? { ...failure, message: `${failure.message} ${note}` } : failure

/** A token file moved aside as damaged: its path and its last write (epoch milliseconds). */
export interface MovedAside {
  readonly path: string
  readonly mtimeMillis: number
}

/**
 * The newest token file moved aside as damaged (`<token file>.corrupt-*`,
 * regular files only, links not followed), or `undefined`. Never throws.
 */
export const newestMovedAside = (tokenFilePath: string): MovedAside | undefined => {
  const dir = nodePath.dirname(tokenFilePath)
  const prefix = `${nodePath.basename(tokenFilePath)}.corrupt-`
  let newest: MovedAside | undefined
  try {
    for (const name of nodeFs.readdirSync(dir)) {
      if (!name.startsWith(prefix)) continue
      const p = nodePath.join(dir, name)
      const st = nodeFs.lstatSync(p, { throwIfNoEntry: false })
      if (st?.isFile() && (newest === undefined || st.mtimeMs > newest.mtimeMillis)) newest = { path: p, mtimeMillis: st.mtimeMs }
    }
  } catch {
    return newest
  }
  return newest
}
