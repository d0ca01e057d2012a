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
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import * as Redacted from "effect/Redacted"
import type * as PlatformError from "effect/PlatformError"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as os from "node:os"
import * as nodePath from "node:path"
import { DeviceIdentity } from "./DeviceIdentity.js"
import { CorruptTokenFileError, LOGIN_HINT, type LockTimeoutError, TokenStoreError } from "./Errors.js"
import { describeError } from "./Errno.js"
import { checkFile, checkFolder, type PermissionCheck } from "./StoragePermissions.js"
import * as FileLock from "./FileLock.js"
import { KimiAuthConfig, lockWaitFor } from "./KimiAuthConfig.js"
import { recordLoggedOut } from "./LogoutMarker.js"
import { readRefusal, recordRefusal, type RefreshRefusal } from "./RefreshRefusal.js"
import { describeSize, readSmallFileSync, type SmallFile, TOKEN_FILE_LIMIT_BYTES } from "./SmallFile.js"
import { decodeTokenFile, encodeTokenFile, type TokenSet } from "./TokenSet.js"

/** The token store. */
export interface TokenStoreShape {
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
  /**
   * Notes that Kimi refused the refresh token of `refused` for good, for
   * `status` (see `RefreshRefusal.ts`). Best effort, never fails. Optional:
   * the memory store has none.
   */
  readonly recordRefusal?: ((refused: TokenSet, detail: string) => Effect.Effect<void>) | undefined
  /** The recorded refusal, when it concerns the refresh token of `stored`. Never fails. */
  readonly refusalOf?: ((stored: TokenSet) => Effect.Effect<RefreshRefusal | undefined>) | undefined
}

/** Who ran a refresh that was interrupted between its request and its save (see {@link PreparedSave}). */
export interface InterruptedRefresh {
  readonly pid: number
  readonly hostname: string
  /** ISO time at which the request was about to be sent. */
  readonly startedAt: string
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
const TEMP_MAX_AGE_MILLIS = 10 * 60 * 1000
const hasModes = process.platform !== "win32"

/**
 * Bytes reserved before a refresh: two tokens at the 8 KiB cap plus every
 * other field, rounded up. Larger sets are still written, without the proof.
 */
export const RESERVED_BYTES = 24 * 1024

/** Largest refresh marker read (it holds a pid, a host name and a time). */
const MARKER_LIMIT_BYTES = 4096

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
  platform: NodeJS.Platform = process.platform
): Effect.Effect<A, PlatformError.PlatformError, R> =>
  platform === "win32"
    ? Effect.retry(rename, {
      schedule: Schedule.max([
        Schedule.jittered(Schedule.min([Schedule.exponential("2 millis", 1.5), Schedule.spaced("50 millis")])),
        Schedule.during(RENAME_RETRY_BUDGET)
      ]),
      while: (e) => e.reason._tag === "PermissionDenied" || e.reason._tag === "Busy"
    })
    : rename

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
  const identity = yield* DeviceIdentity
  const fs = yield* FileSystem.FileSystem
  const path = yield* Path.Path
  const file = settings.tokenFilePath
  const dir = settings.storageDir
  const base = path.basename(file)
  const lock = yield* FileLock.make({
    path: settings.lockPath,
    timeout: lockWaitFor(settings),
    staleAfter: settings.staleLockAfter
  })

  const storeError = (message: string) => (cause: PlatformError.PlatformError) =>
    new TokenStoreError({ path: file, message: `${message} (${describe(cause)})`, cause })

  /** Runs a permission check: refusals fail with its message, repairs are logged as warnings. */
  const checked = (p: string, check: () => PermissionCheck) =>
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
      Effect.flatMap((r) =>
        r._tag === "Refused"
          ? Effect.fail(new TokenStoreError({ path: p, message: r.message }))
          : r.repaired !== undefined
          ? Effect.logWarning(`opencode-kimi-auth: ${r.repaired}`)
          : Effect.void
      )
    )
  const checkDir = checked(dir, () => checkFolder(dir))
  const checkTokenFile = checked(file, () => checkFile(file))

  const ensureDir = checkDir.pipe(
    Effect.andThen(fs.makeDirectory(dir, { recursive: true, mode: DIR_MODE })),
    Effect.mapError((e) =>
      e._tag === "TokenStoreError"
        ? e
        : storeError(`Cannot create the storage folder ${dir}; check that its parent exists and is writable by you`)(e)
    ),
    Effect.andThen(checkDir)
  )

  /** Removes temporary files of crashed writers, older than ten minutes. Never fails. */
  const sweepTemps = fs.readDirectory(dir).pipe(
    Effect.flatMap((names) =>
      Effect.forEach(
        names.filter((n) => n.startsWith(`.${base}.`) && n.endsWith(".tmp")),
        (n) =>
          fs.stat(path.join(dir, n)).pipe(
            Effect.flatMap((info) =>
              Option.match(info.mtime, {
                onNone: () => Effect.void,
                onSome: (m) =>
                  Date.now() - m.getTime() > TEMP_MAX_AGE_MILLIS ? fs.remove(path.join(dir, n)) : Effect.void
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
  const syncDir = Effect.scoped(Effect.flatMap(fs.open(dir, { flag: "r" }), (d) => d.sync)).pipe(Effect.ignore)

  const markerPath = `${file}.refreshing`
  const writeError = storeError(
    `Cannot write the token file ${file}; check that ${dir} is writable by you and the disk is not full`
  )
  const tempName = () => path.join(dir, `.${base}.${process.pid}.${crypto.randomBytes(6).toString("hex")}.tmp`)

  /** Removes the "refresh in flight" marker. Never fails. */
  const removeMarker = fs.remove(markerPath).pipe(Effect.ignore)

  /** Renames a finished temp file over the token file, then makes it durable and clears the marker. */
  const install = (tmp: string) =>
    Effect.gen(function*() {
      if (hasModes) yield* fs.chmod(tmp, FILE_MODE).pipe(Effect.mapError(writeError))
      yield* retryWindowsRename(fs.rename(tmp, file)).pipe(
        Effect.mapError((e) =>
          process.platform === "win32" && (e.reason._tag === "PermissionDenied" || e.reason._tag === "Busy")
            ? storeError(
              `Cannot replace the token file ${file}: another program kept it open for seconds (an editor, a ` +
                `backup tool or a virus scanner). The file on disk is unchanged; close that program and try again`
            )(e)
            : writeError(e)
        )
      )
      yield* syncDir
      yield* removeMarker
      yield* sweepTemps
    })

  const save = (tokens: TokenSet): Effect.Effect<void, TokenStoreError> =>
    Effect.gen(function*() {
      yield* ensureDir
      const tmp = tempName()
      const bytes = new TextEncoder().encode(encodeTokenFile(tokens, identity.deviceId))
      yield* Effect.scoped(Effect.gen(function*() {
        const handle = yield* fs.open(tmp, { flag: "wx", mode: FILE_MODE })
        yield* handle.writeAll(bytes)
        yield* handle.sync
      })).pipe(
        Effect.mapError(writeError),
        Effect.andThen(install(tmp)),
        Effect.onError(() => fs.remove(tmp).pipe(Effect.ignore))
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
  const rewrite = (p: string, bytes: Uint8Array) =>
    Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(p, { flag: "r+", noFollow: hasModes })
      yield* handle.writeAll(bytes)
      yield* handle.truncate(bytes.length)
      yield* handle.sync
    }))

  const readMarker = readCapped(markerPath, MARKER_LIMIT_BYTES).pipe(
    Effect.map((found): InterruptedRefresh | undefined => {
      if (found._tag === "Missing") return undefined
      if (found._tag !== "Text") return { pid: 0, hostname: "?", startedAt: "?" }
      const text = found.text
      try {
        const u = JSON.parse(text) as Partial<InterruptedRefresh>
        return {
          pid: typeof u.pid === "number" ? u.pid : 0,
          hostname: typeof u.hostname === "string" ? u.hostname : "?",
          startedAt: typeof u.startedAt === "string" ? u.startedAt : "?"
        }
      } catch {
        return { pid: 0, hostname: "?", startedAt: "?" }
      }
    }),
    Effect.orElseSucceed(() => undefined)
  )

  const prepareSave: Effect.Effect<PreparedSave, TokenStoreError, Scope.Scope> = Effect.gen(function*() {
    yield* ensureDir
    const tmp = tempName()
    // Removed when the scope closes; after a commit it is gone already (renamed), which is ignored.
    yield* Effect.addFinalizer(() => fs.remove(tmp).pipe(Effect.ignore))
    // Real bytes, synced: the blocks are allocated now, so rewriting them later needs no new space.
    // Written from a fresh descriptor and closed at once; `commit` rewrites them through another (see `rewrite`).
    yield* Effect.scoped(Effect.gen(function*() {
      const handle = yield* fs.open(tmp, { flag: "wx", mode: FILE_MODE }).pipe(Effect.mapError(writeError))
      yield* handle.writeAll(new Uint8Array(RESERVED_BYTES).fill(0x20)).pipe(
        Effect.andThen(handle.sync),
        Effect.mapError(storeError(
          `Cannot write the token file ${file}, so no refresh was attempted (the refresh token is unspent); ` +
            `free space on the disk holding ${dir} or make it writable by you`
        ))
      )
    }))
    const interrupted = yield* readMarker
    const markInFlight = Effect.suspend(() =>
      fs.writeFileString(
        markerPath,
        JSON.stringify({ pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString() }) + "\n",
        { mode: FILE_MODE }
      )
    ).pipe(Effect.ignore)
    const commit = (tokens: TokenSet) =>
      Effect.gen(function*() {
        const bytes = new TextEncoder().encode(encodeTokenFile(tokens, identity.deviceId))
        yield* rewrite(tmp, bytes).pipe(Effect.mapError(writeError))
        yield* install(tmp)
      }).pipe(Effect.uninterruptible)
    return { interrupted, markInFlight, abandon: removeMarker, commit } satisfies PreparedSave
  })

  /** A name beside the file for a corrupt copy: `oauth.json.corrupt-<ISO time>` (`:` → `-`, Windows-safe). */
  const asideName = Effect.gen(function*() {
    const stamp = new Date().toISOString().replace(/:/g, "-")
    const candidate = `${file}.corrupt-${stamp}`
    const taken = yield* fs.exists(candidate).pipe(Effect.orElseSucceed(() => true))
    return taken ? `${candidate}-${crypto.randomBytes(3).toString("hex")}` : candidate
  })

  type Outcome =
    | { readonly _tag: "Corrupt"; readonly movedTo: string }
    | { readonly _tag: "Changed" }

  /**
   * Moves the unreadable file aside. If a writer replaced it between our read
   * and the move, what we moved is a good file: it is put back (or left beside
   * a newer one) and the caller reads again.
   */
  const moveAside = (text: string): Effect.Effect<Outcome, TokenStoreError> =>
    Effect.gen(function*() {
      const aside = yield* asideName
      const moved = yield* fs.rename(file, aside).pipe(
        Effect.as(true),
        Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false))
      )
      if (!moved) return { _tag: "Changed" } as const
      const movedFile = yield* readCapped(aside, TOKEN_FILE_LIMIT_BYTES).pipe(Effect.orElseSucceed(() => undefined))
      const movedText = movedFile?._tag === "Text" ? movedFile.text : text
      if (movedText === text) return { _tag: "Corrupt", movedTo: aside } as const
      const good = yield* decodeTokenFile(movedText).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
      if (!good) return { _tag: "Corrupt", movedTo: aside } as const
      yield* fs.link(aside, file).pipe(
        Effect.andThen(fs.remove(aside)),
        Effect.ignore
      )
      return { _tag: "Changed" } as const
    }).pipe(
      Effect.mapError(
        storeError(
          `The token file ${file} cannot be read as tokens and could not be moved aside; move or delete it ` +
            `yourself, then ${LOGIN_HINT}`
        )
      ),
      Effect.uninterruptible
    )

  const load: Effect.Effect<TokenSet | undefined, TokenStoreError | CorruptTokenFileError> = Effect.gen(function*() {
    for (let attempt = 0; attempt < 3; attempt++) {
      yield* checkDir
      yield* checkTokenFile
      const found = yield* readCapped(file, TOKEN_FILE_LIMIT_BYTES).pipe(
        Effect.mapError((e) =>
          new TokenStoreError({
            path: file,
            message: `Cannot read the token file ${file} (${e.code ?? "error"}); check that it is a file you own and can read`,
            cause: e
          })
        )
      )
      if (found._tag === "Missing") return undefined
      if (found._tag === "NotAFile") {
        return yield* new TokenStoreError({
          path: file,
          message: `The token file ${file} is ${found.kind}, not a regular file; it was not read. Move it away, then ${LOGIN_HINT}.`
        })
      }
      // A file far larger than any token file is damaged: moved aside unread (its bytes never loaded).
      const text = found._tag === "Text" ? found.text : ""
      const decoded = found._tag === "Text"
        ? yield* Effect.result(decodeTokenFile(text))
        : { _tag: "Failure" as const, failure: { reason: `it is ${describeSize(found.bytes)}, larger than any token file (${describeSize(found.limitBytes)})` } }
      if (decoded._tag === "Success") return decoded.success.tokens
      const outcome = yield* moveAside(text)
      if (outcome._tag === "Corrupt") {
        return yield* new CorruptTokenFileError({
          path: file,
          movedTo: outcome.movedTo,
          message: `The token file ${file} could not be read: ${decoded.failure.reason}. It was moved to ` +
            `${outcome.movedTo} (nothing was deleted). To log in again, ${LOGIN_HINT}.`
        })
      }
    }
    return yield* new TokenStoreError({
      path: file,
      message: `The token file ${file} kept changing while it was read; another program may be rewriting it. Try again.`
    })
  })

  /**
   * Records the fingerprints of the login being removed (`logged-out.json`, see
   * `LogoutMarker`) so that no copy of it (OpenCode's `auth.json`) is ever
   * adopted back; then removes the file. A file that does not parse is removed
   * without a record. If the record cannot be written, nothing is removed.
   */
  const clear: Effect.Effect<boolean, TokenStoreError> = Effect.gen(function*() {
    const text = yield* fs.readFileString(file).pipe(
      Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(undefined)),
      Effect.orElseSucceed(() => undefined)
    )
    const decoded = text === undefined ? undefined : yield* decodeTokenFile(text).pipe(Effect.orElseSucceed(() => undefined))
    if (decoded !== undefined) {
      const t = decoded.tokens
      yield* Effect.try({
        try: () => recordLoggedOut(dir, [Redacted.value(t.refreshToken), Redacted.value(t.accessToken)]),
        catch: (cause) =>
          new TokenStoreError({
            path: file,
            cause,
            message: `Cannot record the logout in ${dir}, so nothing was removed; check that ${dir} is writable by you ` +
              `(${(cause as NodeJS.ErrnoException)?.code ?? "error"})`
          })
      })
    }
    return yield* fs.remove(file).pipe(
      Effect.as(true),
      Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false)),
      Effect.mapError(storeError(`Cannot remove the token file ${file}; check that ${dir} is writable by you`))
    )
  }).pipe(Effect.uninterruptible)

  return {
    path: file,
    load,
    save,
    clear,
    withLock: lock.withLock,
    prepareSave,
    recordRefusal: (refused, detail) => recordRefusal(fs, file, refused, detail),
    refusalOf: (stored) => readRefusal(fs, file, stored)
  } satisfies TokenStoreShape
})

/**
 * An in-memory store with the same semantics (tests): `load` returns what was
 * last saved, `clear` reports whether there was anything, and `withLock` is an
 * in-process lock with the default 30 s bounded wait.
 */
export const makeMemory = (initial?: TokenSet): Effect.Effect<TokenStoreShape> =>
  Effect.gen(function*() {
    const ref = yield* Ref.make<TokenSet | undefined>(initial)
    const path = "memory:oauth.json"
    const lock = yield* FileLock.makeInProcess({ path: `${path}.lock`, timeout: "30 seconds" })
    const marker = yield* Ref.make<InterruptedRefresh | undefined>(undefined)
    const save = (tokens: TokenSet) => Effect.andThen(Ref.set(ref, tokens), Ref.set(marker, undefined))
    const prepareSave = Effect.map(Ref.get(marker), (interrupted): PreparedSave => ({
      interrupted,
      markInFlight: Ref.set(marker, { pid: process.pid, hostname: "memory", startedAt: new Date().toISOString() }),
      abandon: Ref.set(marker, undefined),
      commit: save
    }))
    return {
      path,
      load: Ref.get(ref),
      save,
      prepareSave,
      clear: Ref.getAndSet(ref, undefined).pipe(Effect.map((previous) => previous !== undefined)),
      withLock: lock.withLock
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
