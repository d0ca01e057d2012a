/**
 * The refresh tokens this store has spent: `oauth.json.spent`, beside the
 * token file, a bounded list of fingerprints (truncated SHA-256, the same
 * {@link fingerprint} as `logged-out.json`; never the tokens) of every refresh
 * token a refresh rotated away.
 *
 * Kimi rotates refresh tokens and revokes the whole login when a spent one is
 * sent again. A host's copy of the login (OpenCode 1's `auth.json`) may hold a
 * refresh token that was spent since; once the token file is missing or moved
 * aside, nothing else tells that copy from a live one. The plugin never adopts
 * a copy listed here, and none at all while the list cannot be read (fails
 * closed, as the logout marker does).
 *
 * The list outlives the token file: it is never removed with it (`logout`,
 * a damaged file moved aside), so it still speaks when the token file is gone.
 *
 * Reading never follows a link, never blocks on a FIFO and never loads more
 * than {@link SPENT_NOTE_LIMIT_BYTES}; writing goes to a new private file
 * renamed over the old one (a link at the path is replaced, not written
 * through). Releases that do not know the file never read it.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { fingerprint, readNoteSync, writeNoteSync } from "./Notes.js"

export { fingerprint }

/** At most this many fingerprints are kept (the newest): a rotation every 15 minutes for a day and more. */
export const MAX_SPENT_FINGERPRINTS = 128

/** The largest note read (a full one is about 5 KiB); anything larger is not ours. */
export const SPENT_NOTE_LIMIT_BYTES = 16 * 1024

/** The note's path for a token file: `<token file>.spent`. */
export const spentNotePath = (tokenFilePath: string): string => `${tokenFilePath}.spent`

/** The note as stored. */
export const SpentNote = Schema.Struct({
  note: Schema.optionalKey(Schema.String),
  updated_at: Schema.optionalKey(Schema.String),
  fingerprints: Schema.Array(Schema.String.check(Schema.isPattern(/^[0-9a-f]{32}$/)))
})

/** The note's JSON text codec. */
export const SpentNoteJson = Schema.fromJsonString(SpentNote)

/** What was found at the note's path. */
export type SpentRead =
  | { readonly _tag: "Absent" }
  /** Something that is not a readable note (a folder, a FIFO, a link, too large, damaged): `what` in words. */
  | { readonly _tag: "Unreadable"; readonly what: string }
  | { readonly _tag: "Read"; readonly fingerprints: ReadonlyArray<string> }

/** Reads the note beside `tokenFilePath` with the notes' one reader: capped, non-blocking, never through a link. Never throws. */
export const readSpentNote = (tokenFilePath: string): SpentRead => {
  const found = readNoteSync(spentNotePath(tokenFilePath), SpentNoteJson, SPENT_NOTE_LIMIT_BYTES)
  switch (found._tag) {
    case "Missing":
      return { _tag: "Absent" }
    case "Unreadable":
      return { _tag: "Unreadable", what: found.why === "damaged" ? "not a list of fingerprints (damaged)" : found.why }
    case "Read":
      return { _tag: "Read", fingerprints: found.value.fingerprints }
  }
}

/** `before` with `added` last (moved there if it was listed), the oldest dropped past {@link MAX_SPENT_FINGERPRINTS}. */
export const withSpent = (before: ReadonlyArray<string>, added: string): Array<string> =>
  [...before.filter((f) => f !== added), added].slice(-MAX_SPENT_FINGERPRINTS)

/**
 * Adds the fingerprint of `refreshToken` to the note beside `tokenFilePath`
 * (created 0600; one that cannot be read is replaced, and a folder there
 * makes it throw). Atomic; throws the `node:fs` error.
 */
export const recordSpentSync = (tokenFilePath: string, refreshToken: string): void => {
  if (refreshToken === "") return
  const before = readSpentNote(tokenFilePath)
  const kept = before._tag === "Read" ? before.fingerprints : []
  writeNoteSync(spentNotePath(tokenFilePath), SpentNoteJson, {
    note: "Fingerprints (SHA-256, truncated) of Kimi refresh tokens already spent; copies holding one are never used.",
    updated_at: new Date().toISOString(),
    fingerprints: withSpent(kept, fingerprint(refreshToken))
  })
}

/**
 * {@link recordSpentSync} as an Effect that never fails: the refresh already
 * happened, so a note that cannot be written is logged as a warning.
 */
export const recordSpent = (tokenFilePath: string, refreshToken: Redacted.Redacted<string>): Effect.Effect<void> =>
  Effect.try({
    try: () => recordSpentSync(tokenFilePath, Redacted.value(refreshToken)),
    catch: (e) => (e as NodeJS.ErrnoException).code ?? "error"
  }).pipe(
    Effect.catch((code) =>
      Effect.logWarning(
        `token refresh: could not note the spent refresh token in ${spentNotePath(tokenFilePath)} (${code}); ` +
          `a stale copy of the login elsewhere cannot be told from a live one`
      )
    )
  )

/** Whether a copy holding `secrets` is listed as spent: `"spent"`, `"unspent"`, or `"unknown"` (the note cannot be read). */
export type SpentVerdict = "spent" | "unspent" | "unknown"

/** Judges `secrets` (a copy's refresh token) against what was read ({@link SpentVerdict}). */
export const spentVerdict = (read: SpentRead, secrets: ReadonlyArray<string>): SpentVerdict => {
  if (read._tag === "Absent") return "unspent"
  if (read._tag === "Unreadable") return "unknown"
  const listed = new Set(read.fingerprints)
  return secrets.some((s) => s !== "" && listed.has(fingerprint(s))) ? "spent" : "unspent"
}

/** {@link spentVerdict} of the note beside `tokenFilePath`. Never throws. */
export const isSpent = (tokenFilePath: string, secrets: ReadonlyArray<string>): SpentVerdict =>
  spentVerdict(readSpentNote(tokenFilePath), secrets)
