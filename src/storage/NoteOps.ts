/**
 * The note operations of the token store (see `Notes.ts` for the files and
 * their formats): what `TokenStore` offers so that the token manager, the
 * status and the logout never build a note's path or touch a note's file.
 * Two implementations: {@link makeFileNotes} over the files beside the token
 * file, and {@link makeMemoryNotes} for the memory store.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import type { TokenSet } from "../tokens/TokenSet.js"
import {
  type ForcedRefreshNote,
  ForcedRefreshJson,
  forcedRefreshKey,
  forcedRefreshPath,
  type ForcedRefreshSeen,
  forcedRefreshSeen,
  fingerprint,
  InFlightJson,
  inFlightNote,
  inFlightPath,
  interruptedOf,
  type InterruptedRefresh,
  isLoggedOut,
  type NoteRead,
  readNoteSync,
  recordLoggedOut,
  refusalNote,
  refusalOf,
  RefusalJson,
  refusalPath,
  type RefreshRefusal,
  removeNoteSync,
  writeNoteSync
} from "./Notes.js"

/** The note operations of a token store. None of them ever carries a token into a file or a message. */
export interface NoteOps {
  /**
   * Whether any of `secrets` belongs to a login the user logged out of here
   * (`logged-out.json`); `true` as well when that marker cannot be read.
   * Synchronous (a few system calls), never throws: the token manager's
   * decisions call it lazily.
   */
  readonly isLoggedOut: (secrets: ReadonlyArray<Redacted.Redacted<string>>) => boolean
  /** Adds the fingerprints of `secrets` to the logout marker. Fails with the OS error (see `noteProblem`). */
  readonly recordLoggedOut: (secrets: ReadonlyArray<string>) => Effect.Effect<void, unknown>
  /**
   * What the forced-refresh note tells about `onDisk`, on this process's
   * clock, which reads `nowMillis` (see `forcedRefreshSeen`). Never fails.
   */
  readonly forcedRefreshSeen: (onDisk: TokenSet, nowMillis: number) => Effect.Effect<ForcedRefreshSeen | undefined>
  /** Notes a refresh forced by an API rejection, at `atMillis`, that issued `issued`. Best effort, never fails. */
  readonly noteForcedRefresh: (issued: TokenSet, atMillis: number) => Effect.Effect<void>
  /** Notes that Kimi refused the refresh token of `refused` for good, for `status`. Best effort, never fails. */
  readonly recordRefusal: (refused: TokenSet, detail: string) => Effect.Effect<void>
  /** The recorded refusal, when it concerns the refresh token of `stored`. Never fails. */
  readonly refusalOf: (stored: TokenSet) => Effect.Effect<RefreshRefusal | undefined>
  /** The interrupted refresh the in-flight marker tells of (a marker that cannot be read: unknown owner). Never fails. */
  readonly readInFlight: Effect.Effect<InterruptedRefresh | undefined>
  /** Writes the in-flight marker (right before a refresh request). Best effort, never fails. */
  readonly markInFlight: Effect.Effect<void>
  /** Removes the in-flight marker. Never fails. */
  readonly clearInFlight: Effect.Effect<void>
}

/** Remembers when this process first saw each forced-refresh note (the last one only). */
const firstSightOf = (seen: Ref.Ref<{ readonly key: string; readonly at: number }>, key: string, now: number) =>
  Ref.modify(seen, (s) => (s.key === key ? [s.at, s] : [now, { key, at: now }]))

/** Reads the forced-refresh note `read()` for `onDisk` on this process's clock. */
const seenWith = (
  seen: Ref.Ref<{ readonly key: string; readonly at: number }>,
  read: () => readonly [NoteRead<ForcedRefreshNote>, number]
) =>
(onDisk: TokenSet, now: number) =>
  Effect.gen(function*() {
    const [note, writtenAt] = read()
    const first = yield* firstSightOf(seen, forcedRefreshKey(note), now)
    return forcedRefreshSeen(note, Redacted.value(onDisk.accessToken), now, first, writtenAt)
  })

/** The forced-refresh note beside `tokenFile` and its mtime (0 when it cannot be had). */
const readForced = (tokenFile: string) => (): readonly [NoteRead<ForcedRefreshNote>, number] => {
  const file = forcedRefreshPath(tokenFile)
  const note = readNoteSync(file, ForcedRefreshJson)
  try {
    return [note, note._tag === "Read" ? nodeFs.lstatSync(file).mtimeMs : 0]
  } catch {
    return [note, 0]
  }
}

/** A best-effort write of a note: logged at debug level when it fails. */
const bestEffort = (what: string, write: () => void): Effect.Effect<void> =>
  Effect.try({ try: write, catch: (e) => e as NodeJS.ErrnoException }).pipe(
    Effect.catch((e) => Effect.logDebug(`token store: could not write the ${what} note (${e.code ?? "error"})`))
  )

/** The note operations over the files beside `tokenFile` (the logout marker in `storageDir`). */
export const makeFileNotes = (tokenFile: string, storageDir: string): Effect.Effect<NoteOps> =>
  Effect.gen(function*() {
    const seen = yield* Ref.make({ key: "", at: 0 })
    return {
      isLoggedOut: (secrets) => isLoggedOut(storageDir, secrets.map(Redacted.value)),
      recordLoggedOut: (secrets) => Effect.try({ try: () => recordLoggedOut(storageDir, secrets), catch: (e) => e }),
      forcedRefreshSeen: seenWith(seen, readForced(tokenFile)),
      noteForcedRefresh: (issued, atMillis) =>
        bestEffort("forced-refresh", () =>
          writeNoteSync(forcedRefreshPath(tokenFile), ForcedRefreshJson, {
            at: atMillis,
            access_token_sha256: fingerprint(Redacted.value(issued.accessToken))
          })),
      recordRefusal: (refused, detail) =>
        bestEffort("refusal", () =>
          writeNoteSync(refusalPath(tokenFile), RefusalJson, refusalNote(Redacted.value(refused.refreshToken), detail, new Date()))),
      refusalOf: (stored) =>
        Effect.sync(() => refusalOf(readNoteSync(refusalPath(tokenFile), RefusalJson), Redacted.value(stored.refreshToken))),
      readInFlight: Effect.sync(() => interruptedOf(readNoteSync(inFlightPath(tokenFile), InFlightJson))),
      markInFlight: bestEffort("in-flight", () =>
        writeNoteSync(inFlightPath(tokenFile), InFlightJson, inFlightNote(process.pid, os.hostname(), new Date()))),
      clearInFlight: Effect.sync(() => removeNoteSync(inFlightPath(tokenFile)))
    } satisfies NoteOps
  })

/** The same operations in memory (the memory store): the same rules, nothing on disk. */
export const makeMemoryNotes: Effect.Effect<NoteOps> = Effect.gen(function*() {
  const seen = yield* Ref.make({ key: "", at: 0 })
  const loggedOut = new Set<string>()
  let forced: ForcedRefreshNote | undefined
  let refused: typeof RefusalJson.Type | undefined
  let inFlight: InterruptedRefresh | undefined
  return {
    isLoggedOut: (secrets) => secrets.some((s) => Redacted.value(s) !== "" && loggedOut.has(fingerprint(Redacted.value(s)))),
    recordLoggedOut: (secrets) =>
      Effect.sync(() => secrets.filter((s) => s !== "").forEach((s) => loggedOut.add(fingerprint(s)))),
    forcedRefreshSeen: seenWith(seen, () => [forced === undefined ? { _tag: "Missing" } : { _tag: "Read", value: forced }, 0]),
    noteForcedRefresh: (issued, atMillis) =>
      Effect.sync(() => {
        forced = { at: atMillis, access_token_sha256: fingerprint(Redacted.value(issued.accessToken)) }
      }),
    recordRefusal: (tokens, detail) =>
      Effect.sync(() => {
        refused = refusalNote(Redacted.value(tokens.refreshToken), detail, new Date())
      }),
    refusalOf: (stored) =>
      Effect.sync(() =>
        refusalOf(refused === undefined ? { _tag: "Missing" } : { _tag: "Read", value: refused }, Redacted.value(stored.refreshToken))
      ),
    readInFlight: Effect.sync(() => inFlight),
    markInFlight: Effect.sync(() => {
      inFlight = { pid: process.pid, hostname: "memory", startedAt: new Date().toISOString() }
    }),
    clearInFlight: Effect.sync(() => {
      inFlight = undefined
    })
  } satisfies NoteOps
})
