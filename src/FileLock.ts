/**
 * A cross-process advisory lock held in a file, for the read → refresh → write
 * critical section around rotating refresh tokens.
 *
 * How it works:
 * - **Acquire**: write `{ pid, startTime, hostname, acquiredAt, token }` to a
 *   draft file (mode 0600) and hard-link it to the lock path, which fails if
 *   the lock exists: the lock appears whole, never empty or half written
 *   (filesystems without hard links fall back to an exclusive create). The
 *   random `token` identifies this one acquisition.
 * - **Hold**: a heartbeat fiber touches the file's mtime every `staleAfter / 3`
 *   while the lock is held. If the file vanished or is no longer ours it logs at
 *   debug level and stops; it never fails the critical section.
 * - **Release** (success, failure or interruption): the file is removed only if
 *   it still holds our token; a waiter that gives up never touches the holder's
 *   file.
 * - **Who holds it**: a pid is not an identity (pids are reused), so the lock
 *   records the holder's pid, its start time (`/proc/<pid>/stat` field 22 on
 *   Linux, the creation time from `wmic` or PowerShell on Windows, `ps -o
 *   lstart=` elsewhere) and the host name.
 * - **Stale**: a lock whose holder is on this host is stale only when that
 *   process is gone: its pid is free, or now belongs to a process that started
 *   at another time. A live holder on this host is never broken, however long
 *   it holds the lock (stopped with SIGSTOP, swapping, under a debugger): the
 *   waiter fails with {@link LockTimeoutError} instead, and the login is
 *   intact. A holder on another host (a shared home folder) cannot be checked:
 *   its lock is stale once its heartbeat (the file's mtime and content) has not
 *   changed for `staleAfter` (default 10 s), measured on the waiter's own
 *   monotonic clock from the moment it first saw that heartbeat, never by
 *   comparing two machines' wall clocks. On Windows, a holder whose pid is
 *   alive but whose creation time cannot be compared (no tool reports it, as
 *   under Wine) is judged by the same heartbeat rule: Windows reuses pids
 *   quickly, and "the pid answers" proves nothing there.
 * - **Take-over**: a waiter that finds a stale lock first takes a short-lived
 *   second lock, `<path>.break` (same exclusive create), then re-reads the lock
 *   and proceeds only if it is still the very file (same inode, same content)
 *   it judged stale. It renames that file to a unique name, checks that what it
 *   moved is the stale file, and deletes it; had the file changed in between it
 *   is linked back. Only one waiter breaks a given lock, and a waiter never
 *   deletes a lock it has not seen stale, so two waiters never both hold it.
 *   (The residual risk needs a breaker killed inside its millisecond-long
 *   window and several waiters racing in microsecond windows afterwards.)
 * - **Wait**: a jittered, growing poll (10 ms → 250 ms) with `Effect.sleep`, so
 *   the TestClock drives it; bounded by `timeout`, then {@link LockTimeoutError}
 *   saying which file to delete if no process uses it.
 * - **In process**: holders are serialized with a `Semaphore` before they touch
 *   the file, so a process does not contend with itself. A nested `withLock` on
 *   the same lock, in the fiber that holds it, runs directly instead of waiting
 *   for itself.
 *
 * - **Cannot delete**: a stale lock the waiter may not remove (`EPERM`/`EACCES`,
 *   e.g. another user's file in a sticky folder) is waited on with the same
 *   backoff, never in a busy loop, and the timeout says who must delete it.
 *
 * Waits, timeouts and staleness use Effect's `Clock` (monotonic time for
 * staleness), so the TestClock drives them. The pid check assumes one pid
 * namespace per host name: containers that share the folder must not share a
 * host name.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Option from "effect/Option"
import * as Path from "effect/Path"
import type * as PlatformError from "effect/PlatformError"
import * as Random from "effect/Random"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import * as Semaphore from "effect/Semaphore"
import * as childProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import { describeError } from "./Errno.js"
import { LockTimeoutError, TokenStoreError } from "./Errors.js"

/** What a lock file holds. */
export interface LockInfo {
  /** Process id of the holder. */
  readonly pid: number
  /** Host name of the holder; the pid is only checked when it is this host's. */
  readonly hostname: string
  /** ISO time at which the lock was taken. */
  readonly acquiredAt: string
  /** Random id of this one acquisition; release removes the file only if it still matches. */
  readonly token: string
  /**
   * When the holder process started, as the OS reports it (see
   * {@link processStartTime}); with the pid, it identifies the process.
   * Absent in locks written by older versions or where it cannot be read.
   */
  readonly startTime?: string | undefined
}

const LockInfoJson = Schema.fromJsonString(Schema.Struct({
  pid: Schema.Number,
  hostname: Schema.String,
  acquiredAt: Schema.String,
  token: Schema.String,
  startTime: Schema.optional(Schema.String)
}))
const decodeLockInfo = Schema.decodeUnknownOption(LockInfoJson)

/** Options of {@link make}. */
export interface FileLockOptions {
  /** The lock file, e.g. `<storageDir>/oauth.json.lock`. Its folder is created (0700) when missing. */
  readonly path: string
  /** Longest total wait (in process and across processes) before {@link LockTimeoutError}. */
  readonly timeout: Duration.Input
  /** A lock whose mtime is older than this is taken over. Also sets the heartbeat (a third of it). */
  readonly staleAfter: Duration.Input
  /** Host name written into the lock and compared for the pid check. Defaults to `os.hostname()`. */
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

/**
 * True when a process with this pid exists (on this host). `EPERM` means it
 * exists but belongs to someone else. Anything that is not a plain positive
 * pid counts as alive: `kill(0)` or `kill(-1)` would address process groups.
 */
export const isPidAlive = (pid: number): boolean => {
  if (!Number.isSafeInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException | undefined)?.code !== "ESRCH"
  }
}

/**
 * When process `pid` started, as an opaque string that changes when the pid is
 * reused: field 22 of `/proc/<pid>/stat` (clock ticks since boot) on Linux,
 * the creation time on Windows ({@link windowsProcessStartTime}),
 * `ps -o lstart= -p <pid>` on other POSIX systems (macOS). `undefined` when it
 * cannot be read (no such process, no `ps`, no Windows tool for it).
 * `platform` is a seam for tests (the macOS path runs on Linux too).
 */
export const processStartTime = (pid: number, platform: NodeJS.Platform = process.platform): string | undefined => {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined
  try {
    if (platform === "linux") {
      const stat = nodeFs.readFileSync(`/proc/${pid}/stat`, "utf8")
      // The command name (field 2) is in parentheses and may hold spaces: count from after it.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      const start = fields[22 - 3]
      return start !== undefined && /^\d+$/.test(start) ? `linux:${start}` : undefined
    }
    if (platform === "win32") return windowsProcessStartTime(pid)
    const out = childProcess.execFileSync("ps", ["-o", "lstart=", "-p", String(pid)], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 2_000
    }).trim()
    return out === "" ? undefined : `ps:${out}`
  } catch {
    return undefined
  }
}

/** Microseconds between 1601-01-01 (Windows FILETIME epoch) and 1970-01-01. */
const FILETIME_EPOCH_MICROS = 11_644_473_600_000_000n

/**
 * `wmic process where ProcessId=N get CreationDate /value` output
 * (`CreationDate=20261202175012.123456+060`, local time and its offset in
 * minutes; UTF-16 or ANSI) as `win:<microseconds since 1601 UTC>`.
 */
export const parseWmicCreationDate = (out: string): string | undefined => {
  const m = /CreationDate=(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\.(\d{6})([+-]\d{1,4})/.exec(out.replace(/\0/g, ""))
  if (m === null) return undefined
  const [y, mo, d, h, mi, sec, micro, offset] = m.slice(1).map(Number) as [number, number, number, number, number, number, number, number]
  const localMillis = Date.UTC(y, mo - 1, d, h, mi, sec)
  if (!Number.isFinite(localMillis)) return undefined
  const utcMicros = BigInt(localMillis - offset * 60_000) * 1000n + BigInt(micro)
  return `win:${utcMicros + FILETIME_EPOCH_MICROS}`
}

/** PowerShell's `StartTime.ToFileTimeUtc()` (100 ns ticks since 1601 UTC) as `win:<microseconds since 1601 UTC>`. */
export const parseFileTimeUtc = (out: string): string | undefined => {
  const t = out.replace(/\0/g, "").trim()
  return /^\d{15,19}$/.test(t) ? `win:${BigInt(t) / 10n}` : undefined
}

/** The Windows tools that can report a process's creation time, in the order they are tried. */
const windowsStartTimeTools: ReadonlyArray<{
  readonly command: string
  readonly args: (pid: number) => ReadonlyArray<string>
  readonly parse: (out: string) => string | undefined
}> = [
  // Fast where it exists (Windows 10, Windows 11 before 24H2, or with the optional feature).
  {
    command: "wmic",
    args: (pid) => ["process", "where", `ProcessId=${pid}`, "get", "CreationDate", "/value"],
    parse: parseWmicCreationDate
  },
  // Everywhere on Windows 10 and 11, slower to start (about half a second).
  {
    command: "powershell.exe",
    args: (pid) => [
      "-NoProfile",
      "-NonInteractive",
      "-Command",
      `(Get-Process -Id ${pid} -ErrorAction Stop).StartTime.ToFileTimeUtc()`
    ],
    parse: parseFileTimeUtc
  }
]

/** The tool found to work on this machine: `undefined` until probed, `null` when none does (Wine). */
let windowsTool: (typeof windowsStartTimeTools)[number] | null | undefined
const windowsCache = new Map<number, { readonly value: string | undefined; readonly at: number }>()
/** How long one answer is reused: a waiter polls every 10-250 ms and each answer spawns a tool. */
const WINDOWS_CACHE_MILLIS = 2_000

const runWindowsTool = (tool: (typeof windowsStartTimeTools)[number], pid: number): string | undefined => {
  try {
    const out = childProcess.execFileSync(tool.command, [...tool.args(pid)], {
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 5_000,
      windowsHide: true
    })
    // wmic writes UTF-16 to a pipe on some versions.
    const text = out.includes(0) ? out.toString("utf16le") : out.toString("latin1")
    return tool.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The creation time of Windows process `pid`, from `wmic` or, where wmic is
 * gone, PowerShell's `Get-Process`, without native code. The tool is chosen
 * once per process by reading this process's own creation time; when none
 * answers (Wine has neither: its `wmic` knows no `CreationDate`, it has no
 * PowerShell), this is `undefined` for every pid, and {@link holderState}
 * falls back to the heartbeat rule. Answers are reused for 2 s.
 */
export const windowsProcessStartTime = (pid: number): string | undefined => {
  if (windowsTool === undefined) {
    windowsTool = windowsStartTimeTools.find((tool) => runWindowsTool(tool, process.pid) !== undefined) ?? null
  }
  if (windowsTool === null) return undefined
  const now = Date.now()
  const cached = windowsCache.get(pid)
  if (cached !== undefined && now - cached.at < WINDOWS_CACHE_MILLIS) return cached.value
  const value = runWindowsTool(windowsTool, pid)
  if (windowsCache.size > 64) windowsCache.clear()
  windowsCache.set(pid, { value, at: now })
  return value
}

let ownStartTime: string | undefined | null = null
/** This process's start time, read once. */
const selfStartTime = (): string | undefined => {
  if (ownStartTime === null) ownStartTime = processStartTime(process.pid)
  return ownStartTime
}

/** What a waiter can know about a lock's holder. */
export type HolderState = "alive" | "gone" | "unknown"

/**
 * Whether the holder named in `info` still runs: `unknown` for another host
 * (or no info); on this host `gone` when its pid is free or belongs to a
 * process that started at another time than the one recorded. On Windows a
 * live pid whose start time cannot be compared (no tool answers, as under
 * Wine, or a lock without one) is `unknown` too: Windows reuses pids within
 * seconds, so such a holder is judged by its heartbeat, like one on another
 * host. Elsewhere such a pid counts as alive. `platform` is a seam for tests.
 */
export const holderState = (
  info: LockInfo | undefined,
  hostname: string = os.hostname(),
  platform: NodeJS.Platform = process.platform
): HolderState => {
  if (info === undefined || info.hostname !== hostname) return "unknown"
  if (!isPidAlive(info.pid)) return "gone"
  const now = info.startTime === undefined ? undefined : processStartTime(info.pid, platform)
  if (now !== undefined) return now === info.startTime ? "alive" : "gone"
  return platform === "win32" ? "unknown" : "alive"
}

const randomId = () => crypto.randomBytes(12).toString("hex")

const formatDuration = (millis: number) =>
  millis % 1000 === 0 ? `${millis / 1000} s` : `${(millis / 1000).toFixed(1)} s`

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
                    new LockTimeoutError({
                      path,
                      message: `Gave up after ${formatDuration(timeoutMillis)} waiting for the lock ${path}: ` +
                        `another operation in this process held it all that time. Try again; if it keeps ` +
                        `happening, restart the process.`
                    })
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

/**
 * Reads a lock file through one descriptor opened non-blocking: its inode and
 * the first 4 KiB as `identity`, its mtime, and the text. Something other
 * than a regular file at the path (a FIFO, where a blocking open hung every
 * waiter for good, a folder, a device) is never read: its `raw` names its
 * kind, so it holds no lock info and is judged like a lock of a holder that
 * cannot be checked (taken over once unchanged for `staleAfter`).
 * `undefined` when nothing is there; other errors are thrown.
 */
export const readLockFile = (file: string): { readonly identity: string; readonly mtimeMillis: number; readonly raw: string } | undefined => {
  let fd: number
  try {
    fd = nodeFs.openSync(file, nodeFs.constants.O_RDONLY | NONBLOCK)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT") return undefined
    if (code === "EISDIR") return { identity: `dir:${file}`, mtimeMillis: 0, raw: "<a folder>" }
    throw e
  }
  try {
    const st = nodeFs.fstatSync(fd)
    let raw = `<not a regular file: mode ${st.mode.toString(8)}>`
    if (st.isFile()) {
      const buffer = Buffer.alloc(4096)
      const n = nodeFs.readSync(fd, buffer, 0, buffer.length, 0)
      raw = buffer.subarray(0, n).toString("utf8")
    }
    return { identity: `${st.ino}:${raw}`, mtimeMillis: st.mtimeMs, raw }
  } finally {
    nodeFs.closeSync(fd)
  }
}

interface Snapshot {
  /** Inode and raw content: equal snapshots are the same lock file. */
  readonly identity: string
  readonly mtimeMillis: number
  readonly info: LockInfo | undefined
}

/**
 * Makes a cross-process file lock (see the module comment). The in-process
 * semaphore belongs to the returned value: share one instance per lock file
 * within a process.
 */
export const make = (options: FileLockOptions): Effect.Effect<FileLock, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const pathService = yield* Path.Path
    const semaphore = yield* Semaphore.make(1)
    const lockPath = options.path
    const breakPath = `${lockPath}.break`
    const dir = pathService.dirname(lockPath)
    const hostname = options.hostname ?? os.hostname()
    const timeoutMillis = Duration.toMillis(options.timeout)
    const staleMillis = Math.max(1, Duration.toMillis(options.staleAfter))
    const heartbeatMillis = Math.max(1, Math.floor(staleMillis / 3))

    const ioError = (what: string) => (e: PlatformError.PlatformError) =>
      new TokenStoreError({
        path: lockPath,
        message: `Cannot ${what} (${describeError(e)}). Check that ${dir} exists, is a folder you own, is ` +
          `writable by you, and that the disk is not full.`,
        cause: e
      })

    /** Reads content and inode from one descriptor ({@link readLockFile}); `undefined` when the file is gone. */
    const snapshot = (file: string): Effect.Effect<Snapshot | undefined, TokenStoreError> =>
      Effect.try({
        try: () => {
          const read = readLockFile(file)
          return read === undefined ? undefined : { ...read, info: Option.getOrUndefined(decodeLockInfo(read.raw)) } satisfies Snapshot
        },
        catch: (e) =>
          new TokenStoreError({
            path: lockPath,
            message: `Cannot read the lock file ${file} (${(e as NodeJS.ErrnoException).code ?? "error"}). Check that ` +
              `${dir} exists, is a folder you own, is writable by you, and that the disk is not full.`,
            cause: e
          })
      })

    /**
     * What this waiter has seen of each lock file it watches: the heartbeat it
     * last saw (identity and mtime) and when, on its own monotonic clock.
     */
    const watched = new Map<string, { readonly beat: string; readonly since: number }>()
    const monotonicMillis = Effect.map(Clock.monotonicTimeNanos, (n) => Number(n / 1_000_000n))

    /** Why the lock in `s` (the file `file`) is stale, or `undefined` while its holder may be alive. */
    const staleReason = (file: string, s: Snapshot): Effect.Effect<string | undefined> =>
      Effect.gen(function*() {
        const state = holderState(s.info, hostname)
        if (state === "gone") return `its holder, process ${s.info?.pid}, is gone`
        if (state === "alive") {
          watched.delete(file)
          return undefined
        }
        // Another host (or no readable info): stale once the heartbeat stops changing for staleAfter.
        const now = yield* monotonicMillis
        const beat = `${s.identity}@${s.mtimeMillis}`
        const seen = watched.get(file)
        if (seen === undefined || seen.beat !== beat) {
          watched.set(file, { beat, since: now })
          return undefined
        }
        const still = now - seen.since
        return still > staleMillis
          ? `its heartbeat has not changed for ${formatDuration(Math.round(still))}`
          : undefined
      })

    /**
     * Creates `file` exclusively with our info. `true` when created, `false`
     * when it exists. Uninterruptible, so it never leaves a half-written file of
     * ours behind; a failed write removes the file it created.
     */
    const tryCreate = (file: string, token: string): Effect.Effect<boolean, TokenStoreError> => {
      const startTime = selfStartTime()
      const info: LockInfo = {
        pid: process.pid,
        hostname,
        acquiredAt: new Date().toISOString(),
        token,
        ...(startTime === undefined ? {} : { startTime })
      }
      const bytes = new TextEncoder().encode(JSON.stringify(info) + "\n")
      /** Exclusive create, then write: the file is briefly empty (filesystems without hard links only). */
      const createInPlace = Effect.scoped(
        Effect.flatMap(fs.open(file, { flag: "wx", mode: 0o600 }), (handle) =>
          handle.writeAll(bytes).pipe(Effect.onError(() => fs.remove(file).pipe(Effect.ignore))))
      )
      // The whole content first, then one atomic link(): nobody ever sees the lock empty or half
      // written (a holder paused between create and write would look unidentifiable, hence stale).
      const create = Effect.suspend(() => {
        const draft = `${file}.${process.pid}-${randomId()}.new`
        return fs.writeFile(draft, bytes, { flag: "wx", mode: 0o600 }).pipe(
          Effect.andThen(
            fs.link(draft, file).pipe(
              Effect.catchIf(
                (e) => e.reason._tag !== "AlreadyExists" && e.reason._tag !== "NotFound",
                () => createInPlace
              )
            )
          ),
          Effect.ensuring(fs.remove(draft).pipe(Effect.ignore))
        )
      })
      return create.pipe(
        Effect.as(true),
        Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false)),
        Effect.catchReason("PlatformError", "NotFound", () =>
          // The folder is missing: create it (0700) and try once more.
          fs.makeDirectory(dir, { recursive: true, mode: 0o700 }).pipe(
            Effect.andThen(create),
            Effect.as(true),
            Effect.catchReason("PlatformError", "AlreadyExists", () => Effect.succeed(false))
          )),
        Effect.mapError(ioError(`create the lock file ${file}`)),
        Effect.uninterruptible
      )
    }

    /**
     * Removes `file` only if it is what `isOurs` accepts. Looks first, and leaves
     * anything else untouched. When it looks right, renames it to a unique name
     * (atomic), checks what was moved and deletes that; should the file have
     * changed in between (only if our own lock was taken over while we lived),
     * the moved file is linked back. Never fails.
     */
    const removeIf = (file: string, isOurs: (s: Snapshot) => boolean): Effect.Effect<string | undefined> =>
      Effect.gen(function*() {
        const before = yield* snapshot(file)
        if (before === undefined || !isOurs(before)) return undefined
        const grave = `${file}.gone-${process.pid}-${randomId()}`
        const moved = yield* fs.rename(file, grave).pipe(
          Effect.as(true),
          Effect.catchReason("PlatformError", "NotFound", () => Effect.succeed(false))
        )
        if (!moved) return undefined
        const s = yield* snapshot(grave)
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
        yield* fs.remove(grave).pipe(Effect.catchReason("PlatformError", "NotFound", () => Effect.void))
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

    const sameAs = (expected: Snapshot) => (s: Snapshot) => s.identity === expected.identity
    const holds = (token: string) => (s: Snapshot) => s.info?.token === token

    /**
     * Takes over the stale lock seen in `seen`, holding `<path>.break` so that
     * only one waiter breaks it. Returns `undefined` when done or when another
     * waiter is at it (the caller then tries to create the lock again), or why
     * the stale file could not be removed (the caller backs off).
     */
    const breakStale = (seen: Snapshot, reason: string): Effect.Effect<string | undefined, TokenStoreError> =>
      Effect.gen(function*() {
        const breakToken = randomId()
        const gotBreak = yield* tryCreate(breakPath, breakToken)
        if (!gotBreak) {
          // Someone else is breaking it; if that breaker died, clear its break lock.
          const b = yield* snapshot(breakPath)
          if (b !== undefined && (yield* staleReason(breakPath, b)) !== undefined) return yield* removeIf(breakPath, sameAs(b))
          return undefined
        }
        return yield* Effect.gen(function*() {
          const again = yield* snapshot(lockPath)
          if (again === undefined || again.identity !== seen.identity) return undefined
          yield* Effect.logDebug(`FileLock: taking over the stale lock ${lockPath}: ${reason}`)
          return yield* removeIf(lockPath, sameAs(seen))
        }).pipe(Effect.ensuring(removeIf(breakPath, holds(breakToken))))
      }).pipe(Effect.uninterruptible)

    /** Polls until the lock file is ours. Interruptible between attempts. */
    const acquireFile = (token: string, remainingMillis: number): Effect.Effect<void, LockTimeoutError | TokenStoreError> => {
      let last: Snapshot | undefined
      let cannotRemove: string | undefined
      const loop = Effect.gen(function*() {
        let attempt = 0
        while (true) {
          if (yield* tryCreate(lockPath, token)) return
          const seen = yield* snapshot(lockPath)
          if (seen === undefined) continue
          last = seen
          const reason = yield* staleReason(lockPath, seen)
          if (reason !== undefined) {
            const failed = yield* breakStale(seen, reason)
            if (failed === undefined) continue
            // A stale lock we may not delete: wait like for a live one, never spin.
            cannotRemove = `it is stale (${reason}) but cannot be removed (${failed})`
          }
          const base = Math.min(250, 10 * Math.pow(1.5, attempt++))
          yield* Effect.sleep(Math.round(base * (yield* Random.nextBetween(0.5, 1.5))))
        }
      })
      return loop.pipe(
        Effect.timeoutOrElse({
          duration: remainingMillis,
          orElse: () => {
            const holder = last?.info
            const who = holder
              ? `held by process ${holder.pid} on ${holder.hostname} since ${holder.acquiredAt}`
              : "held by another process"
            const alive = holderState(holder, hostname) === "alive"
            return Effect.fail(
              new LockTimeoutError({
                path: lockPath,
                message: `Gave up after ${formatDuration(timeoutMillis)} waiting for the lock ${lockPath}, ${who}` +
                  (cannotRemove !== undefined
                    ? `: ${cannotRemove}. Delete it as its owner (or root), or use a storage folder of your own.`
                    : alive
                    ? `, which is still running (a live holder is never interrupted; ` +
                      (process.platform === "win32"
                        ? `if it hangs, end it in Task Manager`
                        : `if it is stopped, resume it with \`kill -CONT ${holder!.pid}\` or end it`) +
                      `). Nothing was changed; try again.`
                    : `. If no kimi-auth or OpenCode process is running, delete ${lockPath} and try again.`)
              })
            )
          }
        })
      )
    }

    /** Keeps the lock's mtime fresh while it is ours; stops quietly when it is not. */
    const heartbeat = (token: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        while (true) {
          yield* Effect.sleep(heartbeatMillis)
          // One failed beat (a file briefly held by a scanner on Windows) is not the end: the next one
          // tries again. Where the holder cannot be identified (Windows without a creation time, another
          // host), a heartbeat that stopped for good would let waiters take a live holder's lock.
          const beat = yield* Effect.result(Effect.gen(function*() {
            const s = yield* snapshot(lockPath)
            if (s === undefined || !holds(token)(s)) return "stop" as const
            const now = new Date()
            yield* fs.utimes(lockPath, now, now).pipe(Effect.mapError(ioError(`refresh the lock file ${lockPath}`)))
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
        Effect.catchCause((cause) => Effect.logDebug(`FileLock: heartbeat for ${lockPath} stopped`, cause))
      )

    const acquire = (remainingMillis: number) =>
      Effect.gen(function*() {
        const token = randomId()
        // Registered before acquiring: release only removes a file holding our token,
        // so it is harmless when the acquisition failed, timed out or was interrupted.
        yield* Effect.addFinalizer(() => removeIf(lockPath, holds(token)))
        yield* acquireFile(token, remainingMillis)
        // Scope finalizers run in reverse: the heartbeat stops before the release.
        yield* Effect.forkScoped(heartbeat(token))
      })

    return {
      path: lockPath,
      withLock: inProcess(semaphore, lockPath, timeoutMillis, acquire)
    } satisfies FileLock
  })
