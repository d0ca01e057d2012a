/**
 * Where the tokens live: `oauth.json` in the storage folder.
 *
 * - **Save** is atomic: the text goes to a temporary file in the same folder
 *   (`.oauth.json.<pid>.<random>.tmp`), which is fsynced, set to 0600 and
 *   renamed over `oauth.json`; then the folder is fsynced where the platform
 *   allows it. A reader sees the old file or the new one, never a torn one,
 *   even when the writer is killed. On Windows a rename over a file another
 *   process holds open fails (`EPERM`): it is retried for up to 10 s
 *   ({@link retryWindowsRename}), then reported, the old file intact. Temporary files are never read; ones left
 *   by a crashed writer are swept after ten minutes.
 * - **Load** returns `undefined` when there is no file. A file that does not
 *   parse is never replaced or deleted: it is moved aside to
 *   `oauth.json.corrupt-<time>` and reported as {@link CorruptTokenFileError}.
 * - **Owners and modes** (`StoragePermissions`, as ssh treats `~/.ssh`): the
 *   folder is 0700 and the file 0600; looser modes of our own folder and file
 *   are repaired without following links; a folder or file owned by another
 *   user, a shared or linked folder others may write, or a token file that is
 *   a symbolic link is refused with a message saying how to fix it (POSIX
 *   only; Windows has no such bits).
 * - **Lock**: `withLock` holds the cross-process lock `oauth.json.lock` (see
 *   `FileLock`) around a whole critical section. `load`, `save` and `clear` do
 *   not take it themselves: the token manager runs load → refresh → save inside
 *   one `withLock`, re-reading the file there.
 *
 * No error ever carries the file's contents or a token.
 *
 * Every decision (what a file found is, whether a moved file goes back, what
 * the refresh marker says, which temp files are swept, when a rename failed
 * because Windows held the file open, what a logout records) is a named pure
 * function in `TokenStoreDecisions.ts`; the file work is a set of small
 * Effects over a `FileStore` below, and `makeFile` only wires them.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import type * as PlatformError from "effect/PlatformError"
import type * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as nodePath from "node:path"
import { DeviceIdentity } from "../oauth/DeviceIdentity.js"
import { advised, CorruptTokenFileError, type LockTimeoutError, TokenStoreError } from "../Errors.js"
import { describeError } from "./Errno.js"
import { checkFile, checkFolder, type PermissionCheck } from "./StoragePermissions.js"
import * as FileLock from "../lock/FileLock.js"
import { KimiAuthConfig, lockWaitFor } from "../config/KimiAuthConfig.js"
import { makeMemory } from "./MemoryStore.js"
import { makeFileNotes, type NoteOps } from "./NoteOps.js"
import { noteProblem } from "./Notes.js"
import { recordSpent } from "./SpentRefreshTokens.js"
import { readSmallFileSync, type SmallFile, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import {
  asideCandidate,
  asideVerdict,
  type DecodedFile,
  type InterruptedRefresh,
  isHeldOpen,
  isStaleTemp,
  isTempFileName,
  judgeTokenFile,
  LOAD_ATTEMPTS,
  movedText,
  permissionStep,
  RESERVED_BYTES,
  secretsToForget,
  tempFileName
} from "./TokenStoreDecisions.js"
import { decodeTokenFile, encodeTokenFile, type TokenSet } from "../tokens/TokenSet.js"

export type { InterruptedRefresh, NoteOps }
/** Re-exported: the in-memory store (see `MemoryStore`). */
export { makeMemory }

/**
 * The token store: the token file, its lock, and every small note beside it
 * ({@link NoteOps}: the logout marker, the forced-refresh and refusal notes,
 * the in-flight marker), so no caller builds a path.
 */
export interface TokenStoreShape extends NoteOps {
  /** Absolute path of the token file (`<storageDir>/oauth.json` by default). */
  readonly path: string
  /**
   * The stored tokens, or `undefined` when there is no file. A file that does not
   * parse is moved aside to `oauth.json.corrupt-<time>` and reported as
   * {@link CorruptTokenFileError}; it is never overwritten or deleted.
   * Repairs looser modes (folder 0700, file 0600) when it finds them.
   */
  readonly load: Effect.Effect<TokenSet | undefined, TokenStoreError | CorruptTokenFileError>
  /** Atomically replaces the file (temp file in the same folder, fsync, rename), 0600 in a 0700 folder. */
  readonly save: (tokens: TokenSet) => Effect.Effect<void, TokenStoreError>
  /**
   * Removes the token file (never the device id), first recording the
   * login's fingerprints in `logged-out.json` so no copy of it is adopted
   * back. Succeeds with `false` when there was none.
   */
  readonly clear: Effect.Effect<boolean, TokenStoreError>
  /**
   * Runs `self` while holding the cross-process lock (`oauth.json.lock`), serialized
   * in process too. Waits at most the configured lock timeout. A lock whose holder
   * on this host is gone is recovered at once; one from another host once its
   * heartbeat stood still for `staleLockAfter` (10 s); a live local holder is
   * never broken (see `FileLock`).
   */
  readonly withLock: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | LockTimeoutError | TokenStoreError, R>
  /**
   * Proves a save can succeed before a refresh token is spent: writes and
   * fsyncs a temporary file at least as large as any token file, in the same
   * folder, and hands back a {@link PreparedSave} that writes the new tokens
   * into that space. A full disk fails here, before the request. The temporary
   * file is removed when the scope closes unless it was committed. Optional in
   * the shape for older implementations; the file and memory stores have it.
   */
  readonly prepareSave?: Effect.Effect<PreparedSave, TokenStoreError, Scope.Scope> | undefined
  /** Notes that a refresh rotated `spent` away (`oauth.json.spent`, see `SpentRefreshTokens.ts`). Never fails. Optional. */
  readonly recordSpent?: ((spent: Redacted.Redacted<string>) => Effect.Effect<void>) | undefined
}

/** Space reserved for one save, and the "refresh in flight" marker around the request. */
export interface PreparedSave {
  /**
   * The marker of an earlier refresh that sent its request and never saved the
   * answer (killed, or its save failed), found when this save was prepared.
   * Under the lock, any marker found is such a leftover.
   */
  readonly interrupted: InterruptedRefresh | undefined
  /** Writes the "refresh in flight" marker; call right before the request. Best effort, never fails. */
  readonly markInFlight: Effect.Effect<void>
  /** Removes the marker without saving: the request failed, nothing was rotated. Never fails. */
  readonly abandon: Effect.Effect<void>
  /**
   * Writes `tokens` into the reserved space (no new allocation for any token
   * file up to the reserved size), fsyncs, renames it over the token file and
   * removes the marker. Uninterruptible.
   */
  readonly commit: (tokens: TokenSet) => Effect.Effect<void, TokenStoreError>
}

const DIR_MODE = 0o700
const FILE_MODE = 0o600
const hasModes = process.platform !== "win32"


/** Reads a small file of the store with {@link readSmallFileSync}, errors as platform-free values. */
const readCapped = (file: string, maxBytes: number): Effect.Effect<SmallFile, NodeJS.ErrnoException> =>
  Effect.try({ try: () => readSmallFileSync(file, maxBytes), catch: (e) => e as NodeJS.ErrnoException })

const describe = describeError
/** Re-exported: the OS error name of a platform error. */
export { describeError }

/** How long {@link retryWindowsRename} keeps trying before it gives up. */
export const RENAME_RETRY_BUDGET = "10 seconds"

/**
 * Windows refuses to replace a file that another process holds open
 * (`EPERM`/`EACCES`/`EBUSY`: another client or OpenCode process reading it,
 * an editor, a backup tool, a virus scanner): retries the rename for up to
 * {@link RENAME_RETRY_BUDGET}, at short jittered intervals (2 ms growing to
 * 50 ms), so that it lands in a gap between readers that keep reopening the
 * file; then fails with the last error. The old file stays whole meanwhile:
 * a rename replaces it entirely or not at all. Elsewhere a rename is tried
 * once. `platform` is a seam for tests.
 */
export const retryWindowsRename = <A, R>(
  rename: Effect.Effect<A, PlatformError.PlatformError, R>,
  platform: string = process.platform
): Effect.Effect<A, PlatformError.PlatformError, R> =>
  platform === "win32"
    ? Effect.retry(rename, {
      schedule: Schedule.max([
        Schedule.jittered(Schedule.min([Schedule.exponential("2 millis", 1.5), Schedule.spaced("50 millis")])),
        Schedule.during(RENAME_RETRY_BUDGET)
      ]),
      while: isHeldOpen
    })
    : rename

// ---------------------------------------------------------------------------
// The file store's steps. Each takes what it needs (the file system and the
// paths, `FileStore`); `makeFile` only wires them together.

/** What the file store's steps work on. */
interface FileStore {
  readonly fs: FileSystem.FileSystem
  readonly path: Path.Path
  /** The token file. */
  readonly file: string
  /** The storage folder holding it. */
  readonly dir: string
  /** The notes beside it, among them the "refresh in flight" marker (`oauth.json.refreshing`). */
  readonly notes: NoteOps
  /** Its `device_id` is written into every file. */
  readonly identity: DeviceIdentity["Service"]
}

/** A {@link TokenStoreError} about the token file `file`, naming the OS error. */
const storeError = (file: string, message: string) => (cause: PlatformError.PlatformError) =>
  new TokenStoreError({ path: file, message: `${message} (${describe(cause)})`, cause })

/** The error of a write into the storage folder that failed. */
const writeError = (s: FileStore) =>
  storeError(s.file, `Cannot write the token file ${s.file}; check that ${s.dir} is writable by you and the disk is not full`)

/** Runs a permission check of `p`: refusals fail with its message, repairs are logged as warnings. */
const checked = (p: string, check: () => PermissionCheck): Effect.Effect<void, TokenStoreError> =>
  Effect.try({
    try: check,
    catch: (e) =>
      new TokenStoreError({
        path: p,
        message: `Cannot check the owner and mode of ${p} (${(e as NodeJS.ErrnoException).code ?? "error"}); ` +
          `check that it is yours and readable by you`,
        cause: e
      })
  }).pipe(
    Effect.flatMap((r) => {
      const step = permissionStep(r)
      return step._tag === "Refuse"
        ? Effect.fail(new TokenStoreError({ path: p, message: step.message }))
        : step._tag === "Warn"
        ? Effect.logWarning(step.message)
        : Effect.void
    })
  )

const checkDir = (s: FileStore) => checked(s.dir, () => checkFolder(s.dir))
const checkTokenFile = (s: FileStore) => checked(s.file, () => checkFile(s.file))

/** Checks the storage folder, creates it (0700) when missing, and checks it again. */
const ensureDir = (s: FileStore): Effect.Effect<void, TokenStoreError> =>
  checkDir(s).pipe(
    Effect.andThen(s.fs.makeDirectory(s.dir, { recursive: true, mode: DIR_MODE })),
    Effect.mapError((e) =>
      e._tag === "TokenStoreError"
        ? e
        : storeError(
          s.file,
          `Cannot create the storage folder ${s.dir}; check that its parent exists and is writable by you`
        )(e)
    ),
    Effect.andThen(checkDir(s))
  )

/** A fresh temporary file name beside the token file. */
const tempName = (s: FileStore) =>
  s.path.join(s.dir, tempFileName(s.path.basename(s.file), process.pid, crypto.randomBytes(6).toString("hex")))

/** Removes temporary files of crashed writers ({@link isStaleTemp}). Never fails. */
const sweepTemps = (s: FileStore): Effect.Effect<void> =>
  s.fs.readDirectory(s.dir).pipe(
    Effect.flatMap((names) =>
      Effect.forEach(
        names.filter((n) => isTempFileName(n, s.path.basename(s.file))),
        (n) =>
          s.fs.stat(s.path.join(s.dir, n)).pipe(
            Effect.flatMap((info) =>
              Option.match(info.mtime, {
                onNone: () => Effect.void,
                onSome: (m) => isStaleTemp(m, Date.now()) ? s.fs.remove(s.path.join(s.dir, n)) : Effect.void
              })
            ),
            Effect.ignore
          ),
        { discard: true }
      )
    ),
    Effect.ignore
  )

/** fsync of the folder, so the rename itself is durable. Some platforms refuse it: ignored. */
const syncDir = (fs: FileSystem.FileSystem, dir: string): Effect.Effect<void> =>
  Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (d) => d.sync)).pipe(Effect.ignore)

/** Renames a finished temp file over the token file, then makes it durable and clears the marker. */
const install = (s: FileStore, tmp: string): Effect.Effect<void, TokenStoreError> =>
  Effect.gen(function*() {
    if (hasModes) yield* s.fs.chmod(tmp, FILE_MODE).pipe(Effect.mapError(writeError(s)))
    yield* retryWindowsRename(s.fs.rename(tmp, s.file)).pipe(
      Effect.mapError((e) =>
        process.platform === "win32" && isHeldOpen(e)
          ? storeError(
            s.file,
            `Cannot replace the token file ${s.file}: another program kept it open for seconds (an editor, a ` +
              `backup tool or a virus scanner). The file on disk is unchanged; close that program and try again`
          )(e)
          : writeError(s)(e)
      )
    )
    yield* syncDir(s.fs, s.dir)
    yield* s.notes.clearInFlight
    yield* sweepTemps(s)
  })

/** The bytes of the token file holding `tokens`. */
const fileBytes = (s: FileStore, tokens: TokenSet) =>
  new TextEncoder().encode(encodeTokenFile(tokens, s.identity.deviceId))

/** Saves without reserved space: a new temp file, written, fsynced and installed; removed if anything fails. */
const save = (s: FileStore, tokens: TokenSet): Effect.Effect<void, TokenStoreError> =>
  Effect.gen(function*() {
    yield* ensureDir(s)
    const tmp = tempName(s)
    const bytes = fileBytes(s, tokens)
    yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* s.fs.open(tmp, { flag: "wx", mode: FILE_MODE })
      yield* handle.writeAll(bytes)
      yield* handle.sync
    })).pipe(
      Effect.mapError(writeError(s)),
      Effect.andThen(install(s, tmp)),
      Effect.onError(() => s.fs.remove(tmp).pipe(Effect.ignore))
    )
  }).pipe(Effect.uninterruptible)

/**
 * Overwrites the reserved file from its first byte, then cuts it to `bytes`
 * (shrinking never needs space) and fsyncs it. It opens the file anew rather
 * than seeking an open handle back to 0: the handle's write passes its
 * position to `fs.write` with offset and length undefined, and Bun ignores a
 * position given that way, so the tokens landed after the reserved spaces
 * and the truncate left only spaces. A fresh descriptor writes from 0 under
 * any runtime, its cursor and the kernel's offset agreeing.
 */
const rewrite = (fs: FileSystem.FileSystem, p: string, bytes: Uint8Array) =>
  Effect.scoped(Effect.gen(function*() {
    const handle = yield* fs.open(p, { flag: "r+", noFollow: hasModes })
    yield* handle.writeAll(bytes)
    yield* handle.truncate(bytes.length)
    yield* handle.sync
  }))

/**
 * Whether this save may spend the refresh token: {@link RESERVED_BYTES} real
 * bytes (spaces) written to `tmp` and fsynced, so the blocks are allocated
 * now and rewriting them later needs no new space. Written from a fresh
 * descriptor and closed at once; the commit rewrites them through another
 * (see {@link rewrite}). A full disk fails here, before the request.
 */
const reserveSpace = (s: FileStore, tmp: string): Effect.Effect<void, TokenStoreError> =>
  Effect.scoped(Effect.gen(function*() {
    const handle = yield* s.fs.open(tmp, { flag: "wx", mode: FILE_MODE }).pipe(Effect.mapError(writeError(s)))
    yield* handle.writeAll(new Uint8Array(RESERVED_BYTES).fill(0x20)).pipe(
      Effect.andThen(handle.sync),
      Effect.mapError(storeError(
        s.file,
        `Cannot write the token file ${s.file}, so no refresh was attempted (the refresh token is unspent); ` +
          `free space on the disk holding ${s.dir} or make it writable by you`
      ))
    )
  }))

/** Reserves the space of one save and reads the marker of an interrupted refresh (see {@link PreparedSave}). */
const prepareSave = (s: FileStore): Effect.Effect<PreparedSave, TokenStoreError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* ensureDir(s)
    const tmp = tempName(s)
    // Removed when the scope closes; after a commit it is gone already (renamed), which is ignored.
    yield* Effect.addFinalizer(() => s.fs.remove(tmp).pipe(Effect.ignore))
    yield* reserveSpace(s, tmp)
    const interrupted = yield* s.notes.readInFlight
    const commit = (tokens: TokenSet) =>
      Effect.gen(function*() {
        yield* rewrite(s.fs, tmp, fileBytes(s, tokens)).pipe(Effect.mapError(writeError(s)))
        yield* install(s, tmp)
      }).pipe(Effect.uninterruptible)
    return { interrupted, markInFlight: s.notes.markInFlight, abandon: s.notes.clearInFlight, commit } satisfies PreparedSave
  })

/** A free name beside the file for a damaged copy ({@link asideCandidate}, with a random tail when taken). */
const asideName = (s: FileStore): Effect.Effect<string> =>
  Effect.gen(function*() {
    const candidate = asideCandidate(s.file, new Date())
    const taken = yield* s.fs.exists(candidate).pipe(Effect.orElseSucceed(() => true))
    return taken ? `${candidate}-${crypto.randomBytes(3).toString("hex")}` : candidate
  })

/** What moving a damaged file aside came to. */
type Outcome =
  | { readonly _tag: "Corrupt"; readonly movedTo: string }
  | { readonly _tag: "Changed" }

/** Whether `text` is a token file's text, a login. */
const isLoginText = (text: string): Effect.Effect<boolean> =>
  decodeTokenFile(text).pipe(Effect.as(true), Effect.orElseSucceed(() => false))

/**
 * Moves the unreadable file (whose text was `text`) aside. If a writer
 * replaced it between our read and the move, what we moved is a good file:
 * it is put back (or left beside a newer one) and the caller reads again
 * ({@link asideVerdict}).
 */
const moveAside = (s: FileStore, text: string): Effect.Effect<Outcome, TokenStoreError> =>
  Effect.gen(function*() {
    const aside = yield* asideName(s)
    const moved = yield* s.fs.rename(s.file, aside).pipe(
      Effect.as(true),
      Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false))
    )
    if (!moved) return { _tag: "Changed" } as const
    const movedFile = yield* readCapped(aside, TOKEN_FILE_LIMIT_BYTES).pipe(Effect.orElseSucceed(() => undefined))
    const moving = movedText(text, movedFile)
    const verdict = asideVerdict(text, moving, yield* isLoginText(moving))
    if (verdict === "KeepAside") return { _tag: "Corrupt", movedTo: aside } as const
    yield* s.fs.link(aside, s.file).pipe(
      Effect.andThen(s.fs.remove(aside)),
      Effect.ignore
    )
    return { _tag: "Changed" } as const
  }).pipe(
    Effect.mapError((cause) =>
      new TokenStoreError({
        path: s.file,
        ...advised(
          `The token file ${s.file} cannot be read as tokens and could not be moved aside (${describe(cause)})`,
          { _tag: "RemovePath", path: s.file }
        ),
        cause
      })
    ),
    Effect.uninterruptible
  )

/** Reads the token file under the cap and decodes its text, for {@link judgeTokenFile}. */
const readTokenFile = (file: string): Effect.Effect<DecodedFile, TokenStoreError> =>
  readCapped(file, TOKEN_FILE_LIMIT_BYTES).pipe(
    Effect.mapError((e) =>
      new TokenStoreError({
        path: file,
        message: `Cannot read the token file ${file} (${e.code ?? "error"}); check that it is a file you own and can read`,
        cause: e
      })
    ),
    Effect.flatMap((found): Effect.Effect<DecodedFile> =>
      found._tag === "Text"
        ? Effect.map(Effect.result(decodeTokenFile(found.text)), (decoded) => ({ ...found, decoded }))
        : Effect.succeed(found)
    )
  )

/**
 * One reading of the token file: its tokens, `undefined` when there is
 * none, or `"Changed"` when a writer replaced it while a damaged file was
 * moved aside (read again).
 */
const loadOnce = (
  s: FileStore
): Effect.Effect<TokenSet | undefined | "Changed", TokenStoreError | CorruptTokenFileError> =>
  Effect.gen(function*() {
    yield* checkDir(s)
    yield* checkTokenFile(s)
    const reading = judgeTokenFile(yield* readTokenFile(s.file))
    switch (reading._tag) {
      case "Login":
        return reading.tokens
      case "Empty":
        return undefined
      case "Foreign":
        return yield* new TokenStoreError({
          path: s.file,
          ...advised(`The token file ${s.file} is ${reading.kind}, not a regular file, and was not read`, {
            _tag: "RemovePath",
            path: s.file
          })
        })
      case "Damaged": {
        // A file far larger than any token file is moved aside unread (its bytes never loaded).
        const outcome = yield* moveAside(s, reading.text)
        if (outcome._tag === "Changed") return "Changed" as const
        return yield* new CorruptTokenFileError({
          path: s.file,
          movedTo: outcome.movedTo,
          ...advised(
            `The token file ${s.file} could not be read: ${reading.reason}. It was moved to ${outcome.movedTo}, ` +
              `and nothing was deleted`,
            { _tag: "LogIn" }
          )
        })
      }
    }
  })

/** `load`: {@link loadOnce}, read again up to {@link LOAD_ATTEMPTS} times while a writer keeps replacing the file. */
const load = (s: FileStore): Effect.Effect<TokenSet | undefined, TokenStoreError | CorruptTokenFileError> =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < LOAD_ATTEMPTS; attempt++) {
      const read = yield* loadOnce(s)
      if (read !== "Changed") return read
    }
    return yield* new TokenStoreError({
      path: s.file,
      message: `The token file ${s.file} kept changing while it was read; another program may be rewriting it. Try again.`
    })
  })

/**
 * Records the fingerprints of the login being removed (`logged-out.json`, see
 * `Notes`, {@link secretsToForget}) so that no copy of it (OpenCode's
 * `auth.json`) is ever adopted back; then removes the file. The file is read
 * capped and non-blocking: a FIFO or a folder there never hangs a logout, and
 * is refused, left as it is, like `load` refuses it. A file that
 * holds no login is removed without a record. If the record cannot be
 * written, nothing is removed, and the message says what is in the way.
 */
const clear = (s: FileStore): Effect.Effect<boolean, TokenStoreError> =>
  Effect.gen(function*() {
    const found = yield* readCapped(s.file, TOKEN_FILE_LIMIT_BYTES).pipe(Effect.orElseSucceed(() => undefined))
    if (found?._tag === "NotAFile") {
      return yield* new TokenStoreError({
        path: s.file,
        message: `The token file ${s.file} is ${found.kind}, not a regular file, so it holds no login; it was left ` +
          `as it is. Move it away (mv ${s.file} ${s.file}.bad) if nothing else uses it.`
      })
    }
    const decoded = found?._tag === "Text"
      ? yield* decodeTokenFile(found.text).pipe(Effect.orElseSucceed(() => undefined))
      : undefined
    if (decoded !== undefined) {
      yield* s.notes.recordLoggedOut(secretsToForget(decoded.tokens)).pipe(
        Effect.mapError((cause) =>
          new TokenStoreError({
            path: s.file,
            cause,
            message: `Cannot record the logout in ${s.dir}, so nothing was removed: ` +
              noteProblem(s.path.join(s.dir, "logged-out.json"), cause)
          })
        )
      )
    }
    return yield* s.fs.remove(s.file).pipe(
      Effect.as(true),
      Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false)),
      Effect.mapError(storeError(s.file, `Cannot remove the token file ${s.file}; check that ${s.dir} is writable by you`))
    )
  }).pipe(Effect.uninterruptible)

/**
 * The file store over `settings.tokenFilePath`. Save is uninterruptible: new
 * tokens from a rotation must reach the disk even if the caller is interrupted.
 */
export const makeFile: Effect.Effect<
  TokenStoreShape,
  never,
  KimiAuthConfig | DeviceIdentity | FileSystem.FileSystem | Path.Path
> = Effect.gen(function*() {
  const settings = yield* KimiAuthConfig
  const file = settings.tokenFilePath
  const notes = yield* makeFileNotes(file, settings.storageDir)
  const s: FileStore = {
    fs: yield* FileSystem.FileSystem,
    path: yield* Path.Path,
    file,
    dir: settings.storageDir,
    notes,
    identity: yield* DeviceIdentity
  }
  const lock = yield* FileLock.make({
    path: settings.lockPath,
    timeout: lockWaitFor(settings),
    staleAfter: settings.staleLockAfter
  })
  return {
    ...notes,
    path: file,
    load: load(s),
    save: (tokens) => save(s, tokens),
    clear: clear(s),
    withLock: lock.withLock,
    prepareSave: prepareSave(s),
    recordSpent: (spent) => recordSpent(file, spent)
  } satisfies TokenStoreShape
})

/** The token store service. */
export class TokenStore extends Context.Service<TokenStore, TokenStoreShape>()("opencode-kimi-auth/TokenStore") {
  /**
   * The file store over `tokenFilePath` from {@link KimiAuthConfig}, with the
   * lock at `lockPath` (`lockTimeout`, `staleLockAfter`). Writes `device_id`
   * from {@link DeviceIdentity} into the file.
   */
  static readonly layerFile: Layer.Layer<
    TokenStore,
    never,
    KimiAuthConfig | DeviceIdentity | FileSystem.FileSystem | Path.Path
  > = Layer.effect(TokenStore, makeFile)

  /** An in-memory store, optionally holding `initial` (tests). */
  static readonly layerMemory = (initial?: TokenSet): Layer.Layer<TokenStore> =>
    Layer.effect(TokenStore, makeMemory(initial))
}
