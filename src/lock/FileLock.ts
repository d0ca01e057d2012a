/**
 * A cross-process advisory lock held in a file, for the read → refresh → write
 * critical section around rotating refresh tokens.
 *
 * How it works:
 * - **Acquire**: write the holder's info ({@link LockInfo}: pid, start time,
 *   host name, platform, PID namespace, boot id, time, and a random `token`
 *   identifying this one acquisition) to a draft file (mode 0600) and
 *   hard-link it to the lock path, which fails if anything is there: the lock
 *   appears whole, never empty or half written (filesystems without hard links
 *   fall back to an exclusive create, which never follows a link either).
 * - **Hold**: a heartbeat fiber touches the file's mtime every `staleAfter / 3`
 *   while the lock is held. If the file vanished or is no longer ours it logs
 *   at debug level and stops; it never fails the critical section.
 * - **Release** (success, failure or interruption): the file is removed only if
 *   it still holds our token; a waiter that gives up never touches the
 *   holder's file.
 * - **Who holds it** ({@link judgeHolder}, `ProcessIdentity.ts`): a pid is not
 *   an identity, so the lock records the holder's start time too; and a pid
 *   only means something in its own PID namespace of one boot of one host, so
 *   the lock records those as well. A holder whose pid can be judged from here
 *   is stale only when it is gone (its pid is free, or now belongs to a process
 *   that started at another time); a live one is never broken, however long it
 *   holds the lock (stopped with SIGSTOP, swapping, under a debugger): the
 *   waiter fails with {@link LockTimeoutError} instead, and the login is intact.
 * - **A holder that cannot be judged from here** (another host on a shared home
 *   folder, another PID namespace with the same host name: a container, a
 *   bubblewrap or flatpak sandbox, `unshare -p`; another boot; Windows without
 *   a creation time, as under Wine; something at the path that is not a lock)
 *   is never judged by its pid: its lock is stale once its heartbeat (the
 *   file's identity and mtime) has not changed for `staleAfter` (default 10 s),
 *   measured on the waiter's own monotonic clock from the moment it first saw
 *   that heartbeat, never by comparing two clocks: a lock written by a process
 *   whose clock is ahead or behind is neither broken early nor waited on for ever.
 * - **Take-over**: a waiter that finds a stale lock first takes a short-lived
 *   second lock, `<path>.break` (same exclusive create), then re-reads the lock
 *   and proceeds only if it is still the very file (same inode, same content)
 *   it judged stale. It renames that file to a unique name, checks that what it
 *   moved is the stale file, and deletes it; had the file changed in between it
 *   is linked back. Only one waiter breaks a given lock, and a waiter never
 *   deletes a lock it has not seen stale, so two waiters never both hold it.
 * - **Odd things at the path**: the lock is read with `lstat` and a
 *   non-blocking, non-following open ({@link readLockFile}): a symbolic link
 *   (dangling, or to any file, the token file included), a FIFO, a folder or a
 *   device is never followed, opened for writing, or waited on with a blocking
 *   read. It holds no lock info, so it is judged by its heartbeat and, once
 *   unchanged for `staleAfter`, moved aside (a rename moves the link, never
 *   its target).
 * - **Wait**: a jittered, growing poll (10 ms → 250 ms) with `Effect.sleep`, so
 *   the TestClock drives it; bounded by `timeout`, then {@link LockTimeoutError}
 *   saying which file to delete if no process uses it. A waiter retries at
 *   once at most three times in a row ({@link triesAtOnce}); otherwise it
 *   sleeps between tries, never spins.
 * - **Cannot delete**: a stale lock the waiter may not remove (`EPERM`/`EACCES`,
 *   e.g. another user's file in a sticky folder) is waited on with the same
 *   backoff, and the timeout says who must delete it.
 * - **In process**: holders are serialized with a `Semaphore` before they touch
 *   the file, so a process does not contend with itself. A nested `withLock` on
 *   the same lock, in the fiber that holds it, runs directly.
 *
 * The decisions are named pure functions in `FileLockDecisions.ts`; this
 * module only wires them to the file system.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Path from "effect/Path"
import type * as PlatformError from "effect/PlatformError"
import * as Random from "effect/Random"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import { LockTimeoutError, TokenStoreError } from "../Errors.js"
import { describeError } from "../storage/Errno.js"
import { type FileStat, lstatOrMissing } from "../light/SmallFile.js"
import {
  backoffMillis,
  cannotRemoveNote,
  heartbeatOf,
  heartbeatStep,
  holdsToken,
  type HolderProbe,
  inProcessTimeoutMessage,
  isFolder,
  judgeHolder,
  judgeStaleness,
  linkFallsBackToCreate,
  lockFileContent,
  lockIoMessage,
  type LockSnapshot,
  lockTimeoutMessage,
  type LockTimings,
  lockTimings,
  mayTakeOver,
  newLockInfo,
  notAFile,
  type PidScope,
  sameLock,
  toSnapshot,
  triesAtOnce,
  type WatchedBeat
} from "./FileLockDecisions.js"
import { currentScope, makeHostProbe, ownStartTime } from "./ProcessIdentity.js"

export type { LockInfo } from "./FileLockDecisions.js"

/** Options of {@link make}. */
export interface FileLockOptions {
  /** The lock file, e.g. `<storageDir>/oauth.json.lock`. Its folder is created (0700) when missing. */
  readonly path: string
  /** Longest total wait (in process and across processes) before {@link LockTimeoutError}. */
  readonly timeout: Duration.Input
  /** A lock whose holder cannot be judged from here is taken over once its heartbeat stood still this long. Also sets the heartbeat (a third of it). */
  readonly staleAfter: Duration.Input
  /**
   * Host name written into the lock and compared for the pid check. Defaults to `os.hostname()`. Outside
   * the initial PID namespace the namespace is appended (see `scopedHostname`).
   */
  readonly hostname?: string | undefined
}

/** Options of {@link makeInProcess}. */
export interface InProcessLockOptions {
  /** A label for messages. */
  readonly path: string
  /** Longest wait before {@link LockTimeoutError}. */
  readonly timeout: Duration.Input
}

/** A lock: `withLock(self)` runs `self` while holding it. */
export interface FileLock {
  /** The lock file (or the label of an in-process lock). */
  readonly path: string
  /**
   * Runs `self` while holding the lock, and releases it when `self` ends,
   * fails or is interrupted. Re-entrant within the fiber that holds it.
   */
  readonly withLock: <A, E, R>(
    self: Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | LockTimeoutError | TokenStoreError, R>
}

/**
 * The lock holders the current fiber runs under, for re-entrancy. Fibers forked
 * inside a critical section inherit it and count as inside while it lasts.
 */
const HeldLocks = Context.Reference<ReadonlySet<object>>("opencode-kimi-auth/FileLock/HeldLocks", {
  defaultValue: () => new Set()
})

const randomId = () => crypto.randomBytes(12).toString("hex")

/**
 * The in-process half shared by both locks: waits for the semaphore (bounded),
 * then runs `acquire(remainingMillis)` in a scope that is closed when `self`
 * ends. `acquire` adds its own finalizers (release, heartbeat) to that scope.
 */
const inProcess = <AE>(
  semaphore: Semaphore.Semaphore,
  path: string,
  timeoutMillis: number,
  acquire: (remainingMillis: number) => Effect.Effect<void, AE, Scope.Scope>
) => {
  // The current holder's marker; a fiber that carries it in `HeldLocks` is inside the lock.
  let current: object | undefined
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | AE | LockTimeoutError, R> =>
    Effect.gen(function*() {
      const held = yield* HeldLocks
      if (current !== undefined && held.has(current)) return yield* self
      const holder = {}
      return yield* Effect.acquireUseRelease(
        Scope.make(),
        (scope) =>
          Effect.gen(function*() {
            const start = yield* Clock.currentTimeMillis
            yield* semaphore.takeScoped(1).pipe(
              Effect.timeoutOrElse({
                duration: timeoutMillis,
                orElse: () =>
                  Effect.fail(
                    new LockTimeoutError({ path, message: inProcessTimeoutMessage(path, timeoutMillis) })
                  )
              }),
              Scope.provide(scope)
            )
            const elapsed = (yield* Clock.currentTimeMillis) - start
            yield* Scope.provide(acquire(Math.max(0, timeoutMillis - elapsed)), scope)
            current = holder
            yield* Scope.addFinalizer(scope, Effect.sync(() => {
              if (current === holder) current = undefined
            }))
            return yield* Effect.provideService(self, HeldLocks, new Set([...held, holder]))
          }),
        (scope, exit) => Scope.close(scope, exit)
      )
    })
}

/**
 * An in-process lock only: a `Semaphore` with the same bounded wait and
 * re-entrancy as {@link make}. Used by the memory token store.
 */
export const makeInProcess = (options: InProcessLockOptions): Effect.Effect<FileLock> =>
  Effect.map(Semaphore.make(1), (semaphore) => {
    const timeoutMillis = Duration.toMillis(options.timeout)
    return {
      path: options.path,
      withLock: inProcess(semaphore, options.path, timeoutMillis, () => Effect.void)
    }
  })

const NONBLOCK = nodeFs.constants.O_NONBLOCK ?? 0
const NOFOLLOW = nodeFs.constants.O_NOFOLLOW ?? 0

/** What {@link readLockFile} finds at a path. */
export interface LockFileRead {
  /** Inode and content (or the kind of thing there): equal reads are the same lock file. */
  readonly identity: string
  readonly mtimeMillis: number
  /** The text of a regular file (first 4 KiB), or the kind of thing that is there instead ({@link notAFile}). */
  readonly raw: string
}

/**
 * Reads what is at the lock path, without following or blocking: `lstat`
 * first, then for a regular file one descriptor opened non-blocking and
 * without following a link, its inode checked against the `lstat`'s. Anything
 * else (a symbolic link, dangling or not, a FIFO, a folder, a device, a file
 * swapped in between) is never opened or read: its `raw` names its kind, so it
 * holds no lock info and is judged like a lock whose holder cannot be checked.
 * `undefined` when nothing is there; other errors are thrown.
 */
export const readLockFile = (file: string): LockFileRead | undefined => {
  const st = lstatOrMissing(file)
  if (st === undefined) return undefined
  const other = (kind: "folder" | "symbolic link" | "other", s: FileStat) => {
    const raw = notAFile(kind, s.mode)
    return { identity: `${s.ino}:${raw}`, mtimeMillis: s.mtimeMs, raw }
  }
  if (!st.isFile()) return other(st.isDirectory() ? "folder" : st.isSymbolicLink() ? "symbolic link" : "other", st)
  let fd: number
  try {
    fd = nodeFs.openSync(file, nodeFs.constants.O_RDONLY | NONBLOCK | NOFOLLOW)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT") return undefined
    // Replaced by a link (ELOOP) or a folder since the lstat: judged as what is there now, at the next try.
    if (code === "ELOOP" || code === "EISDIR") return other(code === "ELOOP" ? "symbolic link" : "folder", st)
    throw e
  }
  try {
    const fst = nodeFs.fstatSync(fd)
    if (!fst.isFile()) return other("other", fst)
    const buffer = Buffer.alloc(4096)
    const n = nodeFs.readSync(fd, buffer, 0, buffer.length, 0)
    const raw = buffer.subarray(0, n).toString("utf8")
    return { identity: `${fst.ino}:${raw}`, mtimeMillis: fst.mtimeMs, raw }
  } finally {
    nodeFs.closeSync(fd)
  }
}

// ---------------------------------------------------------------------------
// Steps: the effects of one file lock, over the context its constructor wires.
// ---------------------------------------------------------------------------

/** Who this process is, as its locks record it. */
interface Self {
  readonly pid: number
  readonly scope: PidScope
  /** Read once, at the first acquisition (on Windows it runs a tool). */
  readonly startTime: Effect.Effect<string | undefined>
}

/** What the steps of one file lock share: its paths, timings, file system, identity, and what its waiters have seen. */
interface LockContext extends LockTimings {
  readonly fs: FileSystem.FileSystem
  readonly lockPath: string
  readonly breakPath: string
  readonly dir: string
  readonly self: Self
  readonly probe: HolderProbe
  /** Per lock file watched: the heartbeat last seen and since when ({@link judgeStaleness}). */
  readonly watched: Map<string, WatchedBeat>
}

const monotonicMillis = Effect.map(Clock.monotonicTimeNanos, (n) => Number(n / 1_000_000n))

const ioError = (ctx: LockContext, what: string) => (e: PlatformError.PlatformError) =>
  new TokenStoreError({ path: ctx.lockPath, message: lockIoMessage(what, describeError(e), ctx.dir), cause: e })

/** Reads what is at `file` ({@link readLockFile}); `undefined` when nothing is. */
const snapshot = (ctx: LockContext, file: string): Effect.Effect<LockSnapshot | undefined, TokenStoreError> =>
  Effect.try({
    try: () => {
      const read = readLockFile(file)
      return read === undefined ? undefined : toSnapshot(read)
    },
    catch: (e) =>
      new TokenStoreError({
        path: ctx.lockPath,
        message: lockIoMessage(`read the lock file ${file}`, (e as NodeJS.ErrnoException).code ?? "error", ctx.dir),
        cause: e
      })
  })

/** Why the lock in `s` (the file `file`) is stale, or `undefined` while its holder may be alive ({@link judgeStaleness}). */
const staleReason = (ctx: LockContext, file: string, s: LockSnapshot): Effect.Effect<string | undefined> =>
  Effect.gen(function*() {
    const state = yield* judgeHolder(s.info, ctx.self.scope, ctx.probe)
    // The clock is read only when the heartbeat decides.
    const now = state === "unknown" ? yield* monotonicMillis : 0
    const verdict = judgeStaleness({
      state,
      pid: s.info?.pid,
      beat: heartbeatOf(s),
      seen: ctx.watched.get(file),
      now,
      staleMillis: ctx.staleMillis
    })
    if (verdict.watch === undefined) ctx.watched.delete(file)
    else ctx.watched.set(file, verdict.watch)
    return verdict.reason
  })

/**
 * Creates `file` exclusively with our info. `true` when created, `false`
 * when it exists. Uninterruptible, so it never leaves a half-written file of
 * ours behind; a failed write removes the file it created.
 */
const tryCreate = (ctx: LockContext, file: string, token: string): Effect.Effect<boolean, TokenStoreError> => {
  const { fs, self } = ctx
  const content = Effect.map(self.startTime, (startTime) =>
    new TextEncoder().encode(lockFileContent(newLockInfo({
      pid: self.pid,
      hostname: self.scope.hostname,
      acquiredAt: new Date(),
      token,
      startTime,
      platform: self.scope.platform,
      pidNamespace: self.scope.pidNamespace,
      bootId: self.scope.bootId
    }))))
  /** Exclusive create, then write: the file is briefly empty (filesystems without hard links only). */
  const createInPlace = Effect.scoped(
    Effect.flatMap(fs.open(file, { flag: "wx", mode: 0o600 }), (handle) =>
      Effect.flatMap(content, (bytes) => handle.writeAll(bytes)).pipe(Effect.onError(() => fs.remove(file).pipe(Effect.ignore))))
  )
  // The whole content first, then one atomic link(): nobody ever sees the lock empty or half
  // written (a holder paused between create and write would look unidentifiable, hence stale).
  const create = Effect.suspend(() => {
    const draft = `${file}.${process.pid}-${randomId()}.new`
    return Effect.flatMap(content, (bytes) => fs.writeFile(draft, bytes, { flag: "wx", mode: 0o600 })).pipe(
      Effect.andThen(
        fs.link(draft, file).pipe(Effect.catchIf((e) => linkFallsBackToCreate(e.reason._tag), () => createInPlace))
      ),
      Effect.ensuring(fs.remove(draft).pipe(Effect.ignore))
    )
  })
  return create.pipe(
    Effect.as(true),
    Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false)),
    Effect.catchReason("PlatformError", "NotFound", () =>
      // The folder is missing: create it (0700) and try once more.
      fs.makeDirectory(ctx.dir, { recursive: true, mode: 0o700 }).pipe(
        Effect.andThen(create),
        Effect.as(true),
        Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false))
      )),
    Effect.mapError(ioError(ctx, `create the lock file ${file}`)),
    Effect.uninterruptible
  )
}

/**
 * Removes `file` only if it is what `isOurs` accepts. Looks first, and leaves
 * anything else untouched. When it looks right, renames it to a unique name
 * (atomic), checks what was moved and deletes that; should the file have
 * changed in between (only if our own lock was taken over while we lived),
 * the moved file is linked back. Never fails: returns why it could not
 * remove the file, or `undefined`.
 */
const removeIf = (
  ctx: LockContext,
  file: string,
  isOurs: (s: LockSnapshot) => boolean
): Effect.Effect<string | undefined> => {
  const { fs } = ctx
  return Effect.gen(function*() {
    const before = yield* snapshot(ctx, file)
    if (before === undefined || !isOurs(before)) return undefined
    const grave = `${file}.gone-${process.pid}-${randomId()}`
    const moved = yield* fs.rename(file, grave).pipe(
      Effect.as(true),
      Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false))
    )
    if (!moved) return undefined
    const s = yield* snapshot(ctx, grave)
    if (s !== undefined && !isOurs(s)) {
      const restored = yield* fs.link(grave, file).pipe(
        Effect.as(true),
        Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false)),
        // No hard links on this filesystem: rename back, unless a new lock is there already.
        Effect.catch(() =>
          Effect.flatMap(fs.exists(file), (exists) => exists ? Effect.succeed(false) : fs.rename(grave, file).pipe(Effect.as(true)))
        )
      )
      if (!restored) yield* Effect.logWarning(`FileLock: could not put back the lock ${file} after moving it by mistake`)
    }
    // A folder found at the lock path is removed only when empty; with anything in it, it stays moved aside.
    if (s !== undefined && isFolder(s)) yield* removeEmptyFolder(grave)
    else yield* fs.remove(grave).pipe(Effect.catchReason("PlatformError", "NotFound", () => Effect.void))
    return undefined
  }).pipe(
    Effect.catch((e: PlatformError.PlatformError | TokenStoreError) =>
      Effect.as(
        Effect.logDebug(`FileLock: cannot remove ${file}`),
        e._tag === "PlatformError" ? describeError(e) : e.message
      )
    ),
    Effect.catchCause((cause) => Effect.as(Effect.logDebug(`FileLock: cleanup of ${file} failed`, cause), "failed")),
    Effect.uninterruptible
  )
}

/** Removes `dir` if it is an empty folder; otherwise leaves it, and says where it is. */
const removeEmptyFolder = (dir: string): Effect.Effect<void> =>
  Effect.try({ try: () => nodeFs.rmdirSync(dir), catch: (e) => e }).pipe(
    Effect.catch(() => Effect.logWarning(`FileLock: a folder was found at the lock path; it was moved to ${dir}`))
  )

/**
 * Takes over the stale lock seen in `seen`, holding `<path>.break` so that
 * only one waiter breaks it. Returns `undefined` when done or when another
 * waiter is at it (the caller then tries to create the lock again), or why
 * the stale file could not be removed (the caller backs off).
 */
const breakStale = (ctx: LockContext, seen: LockSnapshot, reason: string): Effect.Effect<string | undefined, TokenStoreError> =>
  Effect.gen(function*() {
    const breakToken = randomId()
    const gotBreak = yield* tryCreate(ctx, ctx.breakPath, breakToken)
    if (!gotBreak) {
      // Someone else is breaking it; if that breaker died, clear its break lock.
      const b = yield* snapshot(ctx, ctx.breakPath)
      if (b !== undefined && (yield* staleReason(ctx, ctx.breakPath, b)) !== undefined) {
        return yield* removeIf(ctx, ctx.breakPath, sameLock(b))
      }
      return undefined
    }
    return yield* Effect.gen(function*() {
      const again = yield* snapshot(ctx, ctx.lockPath)
      if (!mayTakeOver(seen, again)) return undefined
      yield* Effect.logDebug(`FileLock: taking over the stale lock ${ctx.lockPath}: ${reason}`)
      return yield* removeIf(ctx, ctx.lockPath, sameLock(seen))
    }).pipe(Effect.ensuring(removeIf(ctx, ctx.breakPath, holdsToken(breakToken))))
  }).pipe(Effect.uninterruptible)

/** The error of a waiter that gave up: who held the lock, and what the user can do. */
const timedOut = (ctx: LockContext, last: LockSnapshot | undefined, cannotRemove: string | undefined) =>
  Effect.flatMap(judgeHolder(last?.info, ctx.self.scope, ctx.probe), (state) =>
    Effect.fail(
      new LockTimeoutError({
        path: ctx.lockPath,
        message: lockTimeoutMessage({
          lockPath: ctx.lockPath,
          timeoutMillis: ctx.timeoutMillis,
          holder: last?.info,
          holderAlive: state === "alive",
          cannotRemove,
          platform: process.platform
        })
      })
    ))

/** Polls until the lock file is ours. Interruptible between attempts. */
const acquireFile = (
  ctx: LockContext,
  token: string,
  remainingMillis: number
): Effect.Effect<void, LockTimeoutError | TokenStoreError> => {
  let last: LockSnapshot | undefined
  let cannotRemove: string | undefined
  const loop = Effect.gen(function*() {
    let attempt = 0
    let atOnce = 0
    while (true) {
      if (yield* tryCreate(ctx, ctx.lockPath, token)) return
      const seen = yield* snapshot(ctx, ctx.lockPath)
      let again = seen === undefined
      if (seen !== undefined) {
        last = seen
        const reason = yield* staleReason(ctx, ctx.lockPath, seen)
        if (reason !== undefined) {
          const failed = yield* breakStale(ctx, seen, reason)
          // A stale lock we may not delete: wait like for a live one.
          if (failed === undefined) again = true
          else cannotRemove = cannotRemoveNote(reason, failed)
        }
      }
      // Gone or broken: try again at once, a few times in a row at most; otherwise sleep, never spin.
      if (again && triesAtOnce(atOnce)) {
        atOnce++
        continue
      }
      atOnce = 0
      yield* Effect.sleep(backoffMillis(attempt++, yield* Random.nextBetween(0.5, 1.5)))
    }
  })
  return loop.pipe(
    Effect.timeoutOrElse({ duration: remainingMillis, orElse: () => timedOut(ctx, last, cannotRemove) })
  )
}

/** Keeps the lock's mtime fresh while it is ours; stops quietly when it is not. */
const heartbeat = (ctx: LockContext, token: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { fs, lockPath } = ctx
    while (true) {
      yield* Effect.sleep(ctx.heartbeatMillis)
      // One failed beat (a file briefly held by a scanner on Windows) is not the end: the next one
      // tries again. Where the holder cannot be identified (Windows without a creation time, another
      // host), a heartbeat that stopped for good would let waiters take a live holder's lock.
      const beat = yield* Effect.result(Effect.gen(function*() {
        if (heartbeatStep(yield* snapshot(ctx, lockPath), token) === "stop") return "stop" as const
        const now = new Date()
        yield* fs.utimes(lockPath, now, now).pipe(Effect.mapError(ioError(ctx, `refresh the lock file ${lockPath}`)))
        return "beat" as const
      }))
      if (beat._tag === "Failure") {
        yield* Effect.logDebug(`FileLock: a heartbeat for ${lockPath} failed; trying again at the next`, beat.failure)
      } else if (beat.success === "stop") {
        yield* Effect.logDebug(`FileLock: the lock ${lockPath} vanished or changed hands while held; heartbeat stops`)
        return
      }
    }
  }).pipe(
    Effect.catchCause((cause) => Effect.logDebug(`FileLock: heartbeat for ${ctx.lockPath} stopped`, cause))
  )

/**
 * Makes a cross-process file lock (see the module comment). The in-process
 * semaphore, the cache of the host's answers about processes and what the
 * waiters have seen belong to the returned value: share one instance per lock
 * file within a process.
 */
export const make = (options: FileLockOptions): Effect.Effect<FileLock, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const pathService = yield* Path.Path
    const semaphore = yield* Semaphore.make(1)
    const probe = yield* makeHostProbe()
    const ctx: LockContext = {
      ...lockTimings(options),
      fs,
      lockPath: options.path,
      breakPath: `${options.path}.break`,
      dir: pathService.dirname(options.path),
      self: {
        pid: process.pid,
        scope: yield* currentScope(options.hostname ?? os.hostname()),
        // Elsewhere than Linux through the probe: the tool it chooses (wmic or PowerShell) is run once for both.
        startTime: yield* Effect.cached(process.platform === "linux" ? ownStartTime() : probe.startTime(process.pid))
      },
      probe,
      watched: new Map()
    }

    const acquire = (remainingMillis: number) =>
      Effect.gen(function*() {
        const token = randomId()
        // Registered before acquiring: release only removes a file holding our token,
        // so it is harmless when the acquisition failed, timed out or was interrupted.
        yield* Effect.addFinalizer(() => removeIf(ctx, ctx.lockPath, holdsToken(token)))
        yield* acquireFile(ctx, token, remainingMillis)
        // Scope finalizers run in reverse: the heartbeat stops before the release.
        yield* Effect.forkScoped(heartbeat(ctx, token))
      })

    return {
      path: ctx.lockPath,
      withLock: inProcess(semaphore, ctx.lockPath, ctx.timeoutMillis, acquire)
    } satisfies FileLock
  })
