/**
 * What a logout leaves behind: `logged-out.json` in the storage folder, the
 * fingerprints (truncated SHA-256, never the tokens) of every login the user
 * logged out of. A host's copy of a login (OpenCode's `auth.json`) is never
 * adopted back into the store when it matches one: a logout stays a logout
 * even when a copy survives it. A new login has new tokens, so it is never
 * blocked.
 *
 * Fails closed: a marker that cannot be read (damaged, huge, not ours) counts
 * as matching every copy, so nothing is adopted until a login is made.
 *
 * Effect-free and synchronous (`node:fs`), like `StoragePermissions`, so the
 * plugin's thin half and the CLI can use it. Writes are atomic (temp file,
 * fsync, rename) with mode 0600; callers hold the token lock around them.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { writeSmallFileSync } from "../light/SmallFile.js"

/** The marker's file name inside the storage folder. */
export const LOGOUT_MARKER_NAME = "logged-out.json"

/** At most this many fingerprints are kept (the newest). */
const MAX_FINGERPRINTS = 256

/** A marker larger than this is not ours: it counts as unreadable. */
const MAX_MARKER_BYTES = 64 * 1024

/** The fingerprint of one secret: SHA-256, hex, first 32 digits (128 bits). */
export const fingerprint = (secret: string): string =>
  crypto.createHash("sha256").update(secret, "utf8").digest("hex").slice(0, 32)

/** The marker's path for a storage folder. */
export const logoutMarkerPath = (storageDir: string): string => path.join(storageDir, LOGOUT_MARKER_NAME)

type Read = { readonly _tag: "Absent" } | { readonly _tag: "Unreadable" } | { readonly _tag: "Read"; readonly fingerprints: ReadonlyArray<string> }

/** Reads the marker's fingerprints. */
const read = (file: string): Read => {
  let text: string
  try {
    const st = fs.lstatSync(file)
    if (!st.isFile() || st.size > MAX_MARKER_BYTES) return { _tag: "Unreadable" }
    text = fs.readFileSync(file, "utf8")
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT" ? { _tag: "Absent" } : { _tag: "Unreadable" }
  }
  try {
    const parsed = JSON.parse(text) as { fingerprints?: unknown }
    const list = parsed?.fingerprints
    if (!Array.isArray(list) || !list.every((f) => typeof f === "string" && /^[0-9a-f]{32}$/.test(f))) return { _tag: "Unreadable" }
    return { _tag: "Read", fingerprints: list as Array<string> }
  } catch {
    return { _tag: "Unreadable" }
  }
}

/**
 * Whether any of `secrets` (a copy's refresh and access tokens) belongs to a
 * login the user logged out of in `storageDir`; `true` as well when the
 * marker exists but cannot be read. Never throws.
 */
export const isLoggedOut = (storageDir: string, secrets: ReadonlyArray<string>): boolean => {
  const r = read(logoutMarkerPath(storageDir))
  if (r._tag === "Absent") return false
  if (r._tag === "Unreadable") return true
  const known = new Set(r.fingerprints)
  return secrets.some((s) => s !== "" && known.has(fingerprint(s)))
}

/**
 * Adds the fingerprints of `secrets` to the marker in `storageDir` (created
 * 0600 if absent; an unreadable one is replaced). Atomic; throws on an I/O
 * error (the caller decides what to say). Nothing to record is a no-op.
 */
export const recordLoggedOut = (storageDir: string, secrets: ReadonlyArray<string>): void => {
  const added = secrets.filter((s) => s !== "").map(fingerprint)
  if (added.length === 0) return
  const file = logoutMarkerPath(storageDir)
  const before = read(file)
  const kept = before._tag === "Read" ? before.fingerprints.filter((f) => !added.includes(f)) : []
  const fingerprints = [...kept, ...new Set(added)].slice(-MAX_FINGERPRINTS)
  const text = JSON.stringify({
    note: "Fingerprints (SHA-256, truncated) of Kimi logins logged out of; copies of them are never used again.",
    updated_at: new Date().toISOString(),
    fingerprints
  }, null, 2) + "\n"
  writeSmallFileSync(file, text)
}

/**
 * The one "logged out elsewhere" rule: a login served from memory was
 * removed by a logout (in this process or another) when its token file is
 * gone and `logged-out.json` records it. `recorded` (a file read) is asked
 * only when the file is gone. The token manager and the plugin's fast path
 * both decide by it.
 */
export const removedByLogout = (fileGone: boolean, recorded: () => boolean): boolean => fileGone && recorded()
