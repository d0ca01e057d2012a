/**
 * The decisions of the file token store (`TokenStore.ts`), each a pure
 * function with a name: what a token file found on disk is (a login, no
 * login, damaged or foreign), what to do after moving an unreadable file
 * aside (keep it aside, or put back a file a writer replaced meanwhile),
 * what the "refresh in flight" marker says, which leftover temporary files
 * are swept, when a failed rename means Windows kept the file open, what a
 * logout records, and what a permission check asks of the caller. The store
 * does the file work around them; `test/storage/TokenStore.decisions.test.ts` tests
 * them directly.
 *
 * @since 0.2.0
 */
import * as Option from "effect/Option"
import type * as PlatformError from "effect/PlatformError"
import * as Schema from "effect/Schema"
import * as Redacted from "effect/Redacted"
import type * as Result from "effect/Result"
import { describeSize, type SmallFile } from "../light/SmallFile.js"
import { InFlightJson, inFlightNote, interruptedOf, type InterruptedRefresh, UNKNOWN_REFRESH } from "./Notes.js"
import type { PermissionCheck } from "./StoragePermissions.js"
import type { TokenFile, TokenFileDecodeError, TokenSet } from "../tokens/TokenSet.js"

export type { InterruptedRefresh }
export { UNKNOWN_REFRESH }

/** Largest refresh marker read (it holds a pid, a host name and a time). */
export const MARKER_LIMIT_BYTES = 4096

/** Age after which a temporary file of a writer is taken as left by a crashed one, and swept. */
export const TEMP_MAX_AGE_MILLIS = 10 * 60 * 1000

/** How many times `load` reads again when a writer replaced the file under it, before it gives up. */
export const LOAD_ATTEMPTS = 3

/**
 * Bytes reserved before a refresh: two tokens at the 8 KiB cap plus every
 * other field, rounded up. Larger sets are still written, without the proof.
 */
export const RESERVED_BYTES = 24 * 1024

/** What a token file found on disk is. */
export type TokenFileReading =
  /** A login: the tokens it holds. */
  | { readonly _tag: "Login"; readonly tokens: TokenSet }
  /** No file: nobody is logged in. */
  | { readonly _tag: "Empty" }
  /** Not a regular file (a folder, a FIFO, …): refused unread, never moved. */
  | { readonly _tag: "Foreign"; readonly kind: string }
  /**
   * A regular file that holds no login (does not parse, or far larger than
   * any token file): moved aside, never deleted. `text` is what was read
   * (empty for a file too large to read), to tell later whether a writer
   * replaced the file meanwhile; `reason` says why, without any secret.
   */
  | { readonly _tag: "Damaged"; readonly text: string; readonly reason: string }

/**
 * What was found at the token file's path, its text (if any) decoded with
 * `decodeTokenFile`: a {@link SmallFile} whose `Text` carries the result.
 */
export type DecodedFile =
  | Exclude<SmallFile, { readonly _tag: "Text" }>
  | {
    readonly _tag: "Text"
    readonly text: string
    readonly decoded: Result.Result<TokenFile, TokenFileDecodeError>
  }

/**
 * Judges what was found at the token file's path: a login, no login, a
 * foreign thing that is not a file, or a damaged file. A file over the read
 * cap is damaged by its size alone, its bytes never loaded.
 */
export const judgeTokenFile = (found: DecodedFile): TokenFileReading => {
  switch (found._tag) {
    case "Missing":
      return { _tag: "Empty" }
    case "NotAFile":
      return { _tag: "Foreign", kind: found.kind }
    case "TooLarge":
      return {
        _tag: "Damaged",
        text: "",
        reason: `it is ${describeSize(found.bytes)}, larger than any token file (${describeSize(found.limitBytes)})`
      }
    case "Text":
      return found.decoded._tag === "Success"
        ? { _tag: "Login", tokens: found.decoded.success.tokens }
        : { _tag: "Damaged", text: found.text, reason: found.decoded.failure.reason }
  }
}

/**
 * The text of a file just moved aside: what the aside copy holds, or, when
 * it cannot be read back, the text that was judged damaged (so the copy
 * stays aside).
 */
export const movedText = (judged: string, moved: SmallFile | undefined): string =>
  moved?._tag === "Text" ? moved.text : judged

/** What to do with the file just moved aside. */
export type AsideVerdict =
  /** It is the damaged file that was judged: it stays aside, reported as corrupt. */
  | "KeepAside"
  /** A writer replaced the file between the read and the move, with a good login: put it back and read again. */
  | "PutBack"

/**
 * Decides about a file just moved aside: put back only when what was moved
 * differs from what was judged damaged and is itself a login (`movedIsLogin`);
 * a different but also damaged file stays aside.
 */
export const asideVerdict = (judged: string, moved: string, movedIsLogin: boolean): AsideVerdict =>
  moved !== judged && movedIsLogin ? "PutBack" : "KeepAside"

/** A name beside `file` for a damaged copy: `oauth.json.corrupt-<ISO time>` (`:` → `-`, Windows-safe). */
export const asideCandidate = (file: string, now: Date): string =>
  `${file}.corrupt-${now.toISOString().replace(/:/g, "-")}`

/**
 * What the "refresh in flight" marker found says ({@link interruptedOf}):
 * no marker, no interrupted refresh; a marker that cannot be read as one is
 * still an interrupted refresh, of an unknown owner ({@link UNKNOWN_REFRESH});
 * a field of the wrong type reads as unknown.
 */
export const readMarkerText = (found: SmallFile): InterruptedRefresh | undefined =>
  interruptedOf(
    found._tag === "Missing"
      ? found
      : found._tag !== "Text"
      ? { _tag: "Unreadable", why: found._tag }
      : Option.match(Schema.decodeUnknownOption(InFlightJson)(found.text), {
        onNone: () => ({ _tag: "Unreadable", why: "damaged" }),
        onSome: (value) => ({ _tag: "Read", value })
      })
  )

/** The text of the "refresh in flight" marker this process writes right before its request. */
export const markerText = (pid: number, hostname: string, now: Date): string =>
  Schema.encodeSync(InFlightJson)(inFlightNote(pid, hostname, now)) + "\n"

/** Name of a writer's temporary file beside the token file `base`: `.oauth.json.<pid>.<random>.tmp`. */
export const tempFileName = (base: string, pid: number, random: string): string => `.${base}.${pid}.${random}.tmp`

/** Whether `name` in the storage folder is a writer's temporary file of the token file `base`. */
export const isTempFileName = (name: string, base: string): boolean =>
  name.startsWith(`.${base}.`) && name.endsWith(".tmp")

/** Whether a temporary file last written at `mtime` was left by a crashed writer and may be swept. */
export const isStaleTemp = (mtime: Date, now: number): boolean => now - mtime.getTime() > TEMP_MAX_AGE_MILLIS

/**
 * Whether a failed rename is Windows refusing to replace a file another
 * process holds open (`EPERM`/`EACCES` → `PermissionDenied`, `EBUSY` → `Busy`):
 * worth retrying there, and reported as such once the retries ran out.
 */
export const isHeldOpen = (e: PlatformError.PlatformError): boolean =>
  e.reason._tag === "PermissionDenied" || e.reason._tag === "Busy"

/**
 * The secrets a logout records (their fingerprints go to `logged-out.json`)
 * so that no copy of the login is adopted back: both tokens of the login
 * being removed; none when the file held no login.
 */
export const secretsToForget = (tokens: TokenSet | undefined): ReadonlyArray<string> =>
  tokens === undefined ? [] : [Redacted.value(tokens.refreshToken), Redacted.value(tokens.accessToken)]

/** What a permission check asks of the store: fail with its refusal, warn about a repair, or nothing. */
export type PermissionStep =
  | { readonly _tag: "Refuse"; readonly message: string }
  | { readonly _tag: "Warn"; readonly message: string }
  | { readonly _tag: "Proceed" }

/** Turns the result of a permission check (`StoragePermissions`) into what the store does. */
export const permissionStep = (check: PermissionCheck): PermissionStep =>
  check._tag === "Refused"
    ? { _tag: "Refuse", message: check.message }
    : check.repaired !== undefined
    ? { _tag: "Warn", message: `opencode-kimi-auth: ${check.repaired}` }
    : { _tag: "Proceed" }
