/**
 * Every small file the store keeps beside the token file, in one place:
 *
 * | note | path | holds |
 * |---|---|---|
 * | logout marker | `<storageDir>/logged-out.json` | fingerprints of logins logged out of |
 * | forced refresh | `oauth.json.forced-refresh` | when the last refresh forced by an API rejection ran, and what it issued |
 * | refusal | `oauth.json.refused` | that Kimi refused the stored refresh token for good |
 * | in-flight marker | `oauth.json.refreshing` | who sent a refresh whose answer is not saved yet |
 *
 * Names and formats are those of earlier releases, field for field, so an
 * older release running beside this one reads what this one writes and the
 * other way round (the forced-refresh note gains an optional field, which
 * older readers ignore).
 *
 * - **One writer** ({@link writeNoteSync}): a new 0600 file (`wx`), fsynced,
 *   renamed over the note. What is at the note's path is never opened: a
 *   link there (dangling, or pointing at the token file) is replaced, never
 *   written through, and a FIFO never blocks. An empty folder there is removed
 *   first; a folder holding something is left, and the write fails with a
 *   message that names it ({@link noteProblem}).
 * - **One reader** ({@link readNoteSync}): capped, non-blocking, never
 *   following a link; the text decoded by the note's Schema codec. What cannot
 *   be read as the note (a link, a FIFO, a folder, too large, damaged) is
 *   `Unreadable`, and each note says what that means for it.
 * - **One fingerprint** ({@link fingerprint}): SHA-256 in hex, cut to the
 *   length each note's format has always had. Never a token.
 *
 * Synchronous, with no runtime needed (a few system calls on files of a few
 * hundred bytes; Schema decodes in place), so the plugin's core and the CLI
 * can call it outside an Effect; `TokenStore` offers it through the store's
 * interface (`NoteOps`), and the token manager never sees a path. The light
 * path (`src/light/`, no Effect at all) does not import it: its reader and
 * writer are `SmallFile`'s.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as path from "node:path"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { readSmallFileSync, removeSmallFileSync, writeSmallFileSync } from "../light/SmallFile.js"

// ---------------------------------------------------------------------------
// Paths and the fingerprint

/** The logout marker's file name inside the storage folder. */
export const LOGOUT_MARKER_NAME = "logged-out.json"

/** The logout marker's path for a storage folder. */
export const logoutMarkerPath = (storageDir: string): string => path.join(storageDir, LOGOUT_MARKER_NAME)

/** The forced-refresh note beside a token file. */
export const forcedRefreshPath = (tokenFile: string): string => `${tokenFile}.forced-refresh`

/** The refusal note beside a token file. */
export const refusalPath = (tokenFile: string): string => `${tokenFile}.refused`

/** The "refresh in flight" marker beside a token file. */
export const inFlightPath = (tokenFile: string): string => `${tokenFile}.refreshing`

/**
 * The fingerprint of a secret: SHA-256 in hex, its first `digits` (32 by
 * default: 128 bits). The refusal note has always used 16. Enough to tell
 * secrets apart; useless to an attacker.
 */
export const fingerprint = (secret: string, digits: 16 | 32 = 32): string =>
  crypto.createHash("sha256").update(secret, "utf8").digest("hex").slice(0, digits)

// ---------------------------------------------------------------------------
// Codecs: one per note, the JSON text of earlier releases

const Hex32 = Schema.String.check(Schema.isPattern(/^[0-9a-f]{32}$/))

/** `logged-out.json`: `{ note, updated_at, fingerprints: [32 hex digits…] }`. */
export const LogoutMarkerJson = Schema.fromJsonString(Schema.Struct({
  note: Schema.optionalKey(Schema.String),
  updated_at: Schema.optionalKey(Schema.String),
  fingerprints: Schema.Array(Hex32)
}))

/**
 * `oauth.json.forced-refresh`: `{ at }`, epoch millis on the writer's clock,
 * and (since 0.3.0) `access_token_sha256`, the fingerprint of the access
 * token that refresh issued.
 */
export const ForcedRefreshJson = Schema.fromJsonString(Schema.Struct({
  at: Schema.Finite.check(Schema.isGreaterThan(0)),
  access_token_sha256: Schema.optionalKey(Hex32)
}))

/** `oauth.json.refused`: `{ at, detail, refresh_token_sha256 }` (16 hex digits). */
export const RefusalJson = Schema.fromJsonString(Schema.Struct({
  at: Schema.String,
  detail: Schema.optionalKey(Schema.String),
  refresh_token_sha256: Schema.String
}))

/** `oauth.json.refreshing`: `{ pid, hostname, startedAt }`; each field read leniently (see `readMarkerText`). */
export const InFlightJson = Schema.fromJsonString(Schema.Struct({
  pid: Schema.optionalKey(Schema.Unknown),
  hostname: Schema.optionalKey(Schema.Unknown),
  startedAt: Schema.optionalKey(Schema.Unknown)
}))

// ---------------------------------------------------------------------------
// The reader and the writer

/** The largest note read; every real one is far smaller (the logout marker, 256 fingerprints, ~9 KiB). */
export const NOTE_LIMIT_BYTES = 64 * 1024

/** What a note's path held. */
export type NoteRead<A> =
  | { readonly _tag: "Missing" }
  /** Something that is not the note: a link, a FIFO, a folder, too large, damaged, or an I/O error. */
  | { readonly _tag: "Unreadable"; readonly why: string }
  | { readonly _tag: "Read"; readonly value: A }

/** A codec of a note: its JSON text to its value and back. */
export type NoteCodec<A> = Schema.Codec<A, string>

/**
 * Reads the note at `file` with `codec`: capped at `maxBytes`, opened
 * non-blocking and never through a link. Never throws.
 */
export const readNoteSync = <A>(file: string, codec: NoteCodec<A>, maxBytes: number = NOTE_LIMIT_BYTES): NoteRead<A> => {
  try {
    const found = readSmallFileSync(file, maxBytes, { noFollow: true })
    switch (found._tag) {
      case "Missing":
        return found
      case "NotAFile":
        return { _tag: "Unreadable", why: found.kind }
      case "TooLarge":
        return { _tag: "Unreadable", why: "too large" }
      case "Text":
        return Option.match(Schema.decodeUnknownOption(codec)(found.text), {
          onNone: () => ({ _tag: "Unreadable", why: "damaged" }),
          onSome: (value) => ({ _tag: "Read", value })
        })
    }
  } catch (e) {
    return { _tag: "Unreadable", why: (e as NodeJS.ErrnoException).code ?? "error" }
  }
}

/**
 * Writes `value` as the note at `file` (see the module comment: atomic, 0600,
 * never through a link), its JSON indented by `indent` spaces (the logout
 * marker has always been indented). Throws on an I/O error.
 */
export const writeNoteSync = <A>(file: string, codec: NoteCodec<A>, value: A, indent = 0): void => {
  const text = Schema.encodeSync(codec)(value)
  writeSmallFileSync(file, (indent > 0 ? JSON.stringify(JSON.parse(text), null, indent) : text) + "\n")
}

/** Removes the note at `file` (a link itself, never its target; an empty folder). Never throws. */
export const removeNoteSync = (file: string): void => {
  removeSmallFileSync(file)
}

/**
 * What to tell a person when a note could not be written at `file`: a folder
 * in its place is named, with the command that removes it; anything else is
 * the OS error's name.
 */
export const noteProblem = (file: string, cause: unknown): string => {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code ?? "error"
  return code === "EISDIR" || code === "ENOTEMPTY" || code === "EEXIST"
    ? `${file} is a folder, where this tool keeps a file of its own; move it away (mv ${file} ${file}.bad) and try again`
    : `check that ${path.dirname(file)} is writable by you (${code})`
}

// ---------------------------------------------------------------------------
// The logout marker

/** At most this many fingerprints are kept (the newest). */
const MAX_FINGERPRINTS = 256

/**
 * Whether any of `secrets` has its fingerprint in the list note at `file`
 * (a note of `LogoutMarkerJson`'s shape: the logout marker, or any other list
 * of fingerprints). Fails closed: `true` as well when the note exists but
 * cannot be read (damaged, huge, a link, a folder). Never throws.
 */
export const isListed = (file: string, secrets: ReadonlyArray<string>): boolean => {
  const r = readNoteSync(file, LogoutMarkerJson)
  if (r._tag === "Missing") return false
  if (r._tag === "Unreadable") return true
  const known = new Set(r.value.fingerprints)
  return secrets.some((s) => s !== "" && known.has(fingerprint(s)))
}

/**
 * Adds the fingerprints of `secrets` to the list note at `file`, the newest
 * {@link MAX_FINGERPRINTS} kept, with `note` saying what the list is (created
 * 0600 if absent; an unreadable one is replaced). Atomic; throws on an I/O
 * error (the caller says what, with {@link noteProblem}). Nothing to add is a
 * no-op.
 */
export const addToList = (file: string, secrets: ReadonlyArray<string>, note: string): void => {
  const added = secrets.filter((s) => s !== "").map((s) => fingerprint(s))
  if (added.length === 0) return
  const before = readNoteSync(file, LogoutMarkerJson)
  const kept = before._tag === "Read" ? before.value.fingerprints.filter((f) => !added.includes(f)) : []
  writeNoteSync(file, LogoutMarkerJson, {
    note,
    updated_at: new Date().toISOString(),
    fingerprints: [...kept, ...new Set(added)].slice(-MAX_FINGERPRINTS)
  }, 2)
}

/**
 * Whether any of `secrets` (a copy's refresh and access tokens) belongs to a
 * login the user logged out of in `storageDir` ({@link isListed}: an
 * unreadable marker counts as matching, so nothing is adopted until a login
 * is made). Never throws.
 */
export const isLoggedOut = (storageDir: string, secrets: ReadonlyArray<string>): boolean =>
  isListed(logoutMarkerPath(storageDir), secrets)

/** Adds the fingerprints of `secrets` to the logout marker in `storageDir` ({@link addToList}). Throws on an I/O error. */
export const recordLoggedOut = (storageDir: string, secrets: ReadonlyArray<string>): void =>
  addToList(
    logoutMarkerPath(storageDir),
    secrets,
    "Fingerprints (SHA-256, truncated) of Kimi logins logged out of; copies of them are never used again."
  )

// ---------------------------------------------------------------------------
// The forced-refresh note

/** The forced-refresh note as read: the writer's time and, from 0.3.0 writers, the fingerprint of what it issued. */
export type ForcedRefreshNote = typeof ForcedRefreshJson.Type

/** What the forced-refresh note tells this process about the token on disk, on this process's own clock. */
export interface ForcedRefreshSeen {
  /**
   * When the last forced refresh ran, in this process's clock millis: the
   * writer's time, unless that lies ahead of this clock (clocks disagree, or
   * a damaged note); then the time this process first saw the note.
   */
  readonly atMillis: number
  /**
   * Whether that refresh issued the access token on disk: `true` or `false`
   * when the note names its token, `undefined` when it does not (an older
   * release wrote it, or it cannot be read).
   */
  readonly issuedIt: boolean | undefined
}

/** The identity of a note as read, to know whether it is the one seen before ({@link forcedRefreshSeen}). */
export const forcedRefreshKey = (note: NoteRead<ForcedRefreshNote>): string =>
  note._tag === "Read" ? `${note.value.at}/${note.value.access_token_sha256 ?? ""}` : note._tag

/**
 * Reads the forced-refresh note found, for the token on disk (its access
 * token `onDiskAccess`), on this process's clock. The note's time is the
 * later of what its writer's clock said (`at`) and when the file system
 * stamped it (`writtenAtMillis`, its mtime: one clock for every process
 * sharing the folder), so a writer whose clock is behind does not make a
 * fresh note look old. A time ahead of `nowMillis` counts from
 * `firstSeenMillis` (when this process first saw this very note), so a note
 * from a clock ahead, or from the far future, holds a forced refresh back for
 * one window of this process's own time, never forever; a note that cannot be
 * read (a folder, a link, damaged) counts the same way, without naming a
 * token. No note, nothing seen.
 */
export const forcedRefreshSeen = (
  note: NoteRead<ForcedRefreshNote>,
  onDiskAccess: string,
  nowMillis: number,
  firstSeenMillis: number,
  writtenAtMillis = 0
): ForcedRefreshSeen | undefined => {
  if (note._tag === "Missing") return undefined
  const firstSeen = Math.min(firstSeenMillis, nowMillis)
  if (note._tag === "Unreadable") return { atMillis: firstSeen, issuedIt: undefined }
  const at = Math.max(note.value.at, writtenAtMillis)
  const named = note.value.access_token_sha256
  return {
    atMillis: at <= nowMillis ? at : firstSeen,
    issuedIt: named === undefined ? undefined : named === fingerprint(onDiskAccess)
  }
}

// ---------------------------------------------------------------------------
// The refusal note

/** A recorded refusal of the stored refresh token. */
export interface RefreshRefusal {
  /** ISO 8601 time of the refusal. */
  readonly at: string
  /** What the server said, in a few words, without a secret (e.g. `HTTP 400 invalid_grant`). */
  readonly detail: string
}

/** The refusal note's fields for a refusal of `refreshToken`, now. */
export const refusalNote = (refreshToken: string, detail: string, now: Date): typeof RefusalJson.Type => ({
  at: now.toISOString(),
  detail: detail.slice(0, 200),
  refresh_token_sha256: fingerprint(refreshToken, 16)
})

/** The refusal a note read tells of, when it concerns `storedRefresh`; `undefined` otherwise (none, stale, unreadable). */
export const refusalOf = (note: NoteRead<typeof RefusalJson.Type>, storedRefresh: string): RefreshRefusal | undefined =>
  note._tag === "Read" && note.value.refresh_token_sha256 === fingerprint(storedRefresh, 16)
    ? { at: note.value.at.slice(0, 40), detail: (note.value.detail ?? "").slice(0, 200) }
    : undefined

// ---------------------------------------------------------------------------
// The in-flight marker

/** Who ran a refresh that was interrupted between its request and its save (see `PreparedSave`). */
export interface InterruptedRefresh {
  readonly pid: number
  readonly hostname: string
  /** ISO time at which the request was about to be sent. */
  readonly startedAt: string
}

/** The marker left by a refresh whose owner cannot be read back (unparsable, too large, not a file). */
export const UNKNOWN_REFRESH: InterruptedRefresh = { pid: 0, hostname: "?", startedAt: "?" }

/**
 * What the "refresh in flight" marker found says: no marker, no interrupted
 * refresh; a marker that cannot be read as one (a link, a FIFO, a folder,
 * damaged) is still an interrupted refresh, of an unknown owner
 * ({@link UNKNOWN_REFRESH}); a field of the wrong type reads as unknown.
 */
export const interruptedOf = (note: NoteRead<typeof InFlightJson.Type>): InterruptedRefresh | undefined => {
  if (note._tag === "Missing") return undefined
  if (note._tag === "Unreadable") return UNKNOWN_REFRESH
  const u = note.value
  return {
    pid: typeof u.pid === "number" ? u.pid : 0,
    hostname: typeof u.hostname === "string" ? u.hostname : "?",
    startedAt: typeof u.startedAt === "string" ? u.startedAt : "?"
  }
}

/** The marker's fields this process writes right before its request. */
export const inFlightNote = (pid: number, hostname: string, now: Date): typeof InFlightJson.Type => ({
  pid,
  hostname,
  startedAt: now.toISOString()
})

/**
 * The one "logged out elsewhere" rule: a login served from memory was
 * removed by a logout (in this process or another) when its token file is
 * gone and `logged-out.json` records it. `recorded` (a file read) is asked
 * only when the file is gone. The token manager and the plugin's fast path
 * both decide by it.
 */
export const removedByLogout = (fileGone: boolean, recorded: () => boolean): boolean => fileGone && recorded()
