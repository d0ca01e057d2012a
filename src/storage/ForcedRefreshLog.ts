/**
 * When the last refresh forced by an API rejection happened, shared by every
 * process through a small file beside the token file
 * (`oauth.json.forced-refresh`, mode 0600, written under the token lock).
 *
 * The token manager reads it to tell "Kimi revoked our token once" (refresh
 * and heal) from "Kimi refuses every token" (a token that a forced refresh
 * issued moments ago is refused too: refreshing again would only spend the
 * family once per API call, in every process). See
 * `TokenManager.refusesAgain`.
 *
 * Best effort: a file that cannot be read or written counts as no record
 * (the in-process record still bounds this process). Stores that are not
 * files (the memory store's `memory:` path) keep no file.
 *
 * @since 0.2.0
 */
import * as nodePath from "node:path"
import { readSmallFileSync, writeSmallFileSync } from "../light/SmallFile.js"

/** The record's path beside the token file. */
export const forcedRefreshLogPath = (tokenFilePath: string): string => `${tokenFilePath}.forced-refresh`

const isFileStore = (tokenFilePath: string) => nodePath.isAbsolute(tokenFilePath)

/** Epoch millis of the last forced refresh recorded beside `tokenFilePath`; `undefined` when none or unreadable. */
export const readForcedRefreshAt = (tokenFilePath: string): number | undefined => {
  if (!isFileStore(tokenFilePath)) return undefined
  try {
    const found = readSmallFileSync(forcedRefreshLogPath(tokenFilePath), 256)
    if (found._tag !== "Text") return undefined
    const at = (JSON.parse(found.text) as { at?: unknown }).at
    return typeof at === "number" && Number.isFinite(at) && at > 0 ? at : undefined
  } catch {
    return undefined
  }
}

/** Records a forced refresh at `atMillis` (atomic replace, 0600). Never throws. */
export const noteForcedRefresh = (tokenFilePath: string, atMillis: number): void => {
  if (!isFileStore(tokenFilePath)) return
  const file = forcedRefreshLogPath(tokenFilePath)
  try {
    writeSmallFileSync(file, JSON.stringify({ at: atMillis }) + "\n")
  } catch {
    // a note only: the refresh it records is already saved
  }
}
