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
 * Every decision above is a pure exported function beside {@link make}
 * ({@link judgeHolder}, {@link judgeStaleness}, {@link mayTakeOver},
 * {@link backoffMillis}, {@link heartbeatStep}, {@link lockTimeoutMessage}, ...),
 * tested directly; `make` only wires them to the file system.
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
import { describeError } from "../storage/Errno.js"
import { LockTimeoutError, TokenStoreError } from "../Errors.js"

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
): HolderState => judgeHolder(info, hostname, platform, hostProbe)

/** How {@link judgeHolder} asks this host about a process; each question is asked only when needed. */
export interface HolderProbe {
  /** {@link isPidAlive} on the real host. */
  readonly isAlive: (pid: number) => boolean
  /** {@link processStartTime} on the real host. */
  readonly startTime: (pid: number, platform: NodeJS.Platform) => string | undefined
}

const hostProbe: HolderProbe = { isAlive: isPidAlive, startTime: processStartTime }

/**
 * Whose lock is it: the rule of {@link holderState}, with the host's answers
 * given by `probe`. Another host or no readable info: `unknown` (judged by
 * heartbeat). A pid that is free: `gone`. A start time that can be read:
 * `alive` when it is the recorded one, else `gone` (the pid was reused). No
 * start time to compare: `unknown` on Windows (pids are reused within
 * seconds), `alive` elsewhere. The pid and start time are only asked for when
 * the answer depends on them (on Windows each question spawns a tool).
 */
export const judgeHolder = (
  info: LockInfo | undefined,
  hostname: string,
  platform: NodeJS.Platform,
  probe: HolderProbe
): HolderState => {
  if (info === undefined || info.hostname !== hostname) return "unknown"
  if (!probe.isAlive(info.pid)) return "gone"
  const now = info.startTime === undefined ? undefined : probe.startTime(info.pid, platform)
  if (now !== undefined) return now === info.startTime ? "alive" : "gone"
  return platform === "win32" ? "unknown" : "alive"
}

const randomId = () => crypto.randomBytes(12).toString("hex")

const formatDuration = (millis: number) =>
  millis % 1000 === 0 ? `${millis / 1000} s` : `${(millis / 1000).toFixed(1)} s`

/** What {@link LockTimeoutError} says when another operation of this process held the lock for the whole wait. */
export const inProcessTimeoutMessage = (path: string, timeoutMillis: number): string =>
  `Gave up after ${formatDuration(timeoutMillis)} waiting for the lock ${path}: another operation in this ` +
  `process held it all that time. Try again; if it keeps happening, restart the process.`

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

/** What a waiter reads of a lock file: see {@link readLockFile}, with the lock info decoded. */
export interface LockSnapshot {
  /** Inode and raw content: equal snapshots are the same lock file. */
  readonly identity: string
  readonly mtimeMillis: number
  /** The holder's info; `undefined` when the content is not a lock's (unreadable, not a file, foreign). */
  readonly info: LockInfo | undefined
}

// ---------------------------------------------------------------------------
// Decisions: pure functions, each tested directly in test/lock/FileLock.decisions.test.ts.
// ---------------------------------------------------------------------------

/** How long a lock waits, when it counts as stale, and how often its holder beats. */
export interface LockTimings {
  /** Longest total wait before {@link LockTimeoutError}. */
  readonly timeoutMillis: number
  /** A heartbeat unchanged this long (on the waiter's clock) makes an uncheckable holder's lock stale; at least 1. */
  readonly staleMillis: number
  /** How often the holder touches its lock: a third of `staleMillis`, at least 1. */
  readonly heartbeatMillis: number
}

/** The timings of a lock from its options (see {@link LockTimings}). */
export const lockTimings = (options: Pick<FileLockOptions, "timeout" | "staleAfter">): LockTimings => {
  const staleMillis = Math.max(1, Duration.toMillis(options.staleAfter))
  return {
    timeoutMillis: Duration.toMillis(options.timeout),
    staleMillis,
    heartbeatMillis: Math.max(1, Math.floor(staleMillis / 3))
  }
}

/** The snapshot of what {@link readLockFile} read: its content decoded as lock info when it is one. */
export const toSnapshot = (
  read: { readonly identity: string; readonly mtimeMillis: number; readonly raw: string }
): LockSnapshot => ({ ...read, info: Option.getOrUndefined(decodeLockInfo(read.raw)) })

/** The info a new acquisition writes into its lock; `startTime` is left out when it cannot be read. */
export const newLockInfo = (input: {
  readonly pid: number
  readonly hostname: string
  readonly acquiredAt: Date
  readonly token: string
  readonly startTime: string | undefined
}): LockInfo => ({
  pid: input.pid,
  hostname: input.hostname,
  acquiredAt: input.acquiredAt.toISOString(),
  token: input.token,
  ...(input.startTime === undefined ? {} : { startTime: input.startTime })
})

/** The bytes of a lock file: its info as one JSON line. */
export const lockFileContent = (info: LockInfo): string => JSON.stringify(info) + "\n"

/**
 * Whether a failed `link(draft, lock)` means this filesystem has no hard
 * links, so the lock is created in place instead. `AlreadyExists` (the lock
 * is held) and `NotFound` (the folder is missing) are answers, not that.
 */
export const linkFallsBackToCreate = (reason: PlatformError.PlatformError["reason"]["_tag"]): boolean =>
  reason !== "AlreadyExists" && reason !== "NotFound"

/** What a user reads when the lock's folder cannot be used: what failed, why, and what to check. */
export const lockIoMessage = (what: string, detail: string, dir: string): string =>
  `Cannot ${what} (${detail}). Check that ${dir} exists, is a folder you own, is writable by you, and that the ` +
  `disk is not full.`

/** Is `s` the very lock file `expected` was (same inode, same content)? */
export const sameLock = (expected: LockSnapshot) => (s: LockSnapshot): boolean => s.identity === expected.identity

/** Is `s` the lock of the acquisition that wrote `token`? */
export const holdsToken = (token: string) => (s: LockSnapshot): boolean => s.info?.token === token

/**
 * May a waiter that judged `seen` stale, and now holds the break lock, take
 * over what is at the lock path (`again`)? Only if it is still the very file
 * it judged: a new lock written in between is never broken.
 */
export const mayTakeOver = (seen: LockSnapshot, again: LockSnapshot | undefined): boolean =>
  again !== undefined && again.identity === seen.identity

/** What a waiter last saw of a lock's heartbeat, and when, on its own monotonic clock (ms). */
export interface WatchedBeat {
  readonly beat: string
  readonly since: number
}

/** A lock's heartbeat: its identity and mtime. Any change means its holder is still at work. */
export const heartbeatOf = (s: Pick<LockSnapshot, "identity" | "mtimeMillis">): string =>
  `${s.identity}@${s.mtimeMillis}`

/** The judgement of {@link judgeStaleness}: why the lock is stale, and what the waiter remembers of it. */
export interface StaleVerdict {
  /** Why the lock is stale, or `undefined` while its holder may be alive. */
  readonly reason: string | undefined
  /** The heartbeat to remember for this file afterwards; `undefined` forgets it. */
  readonly watch: WatchedBeat | undefined
}

/**
 * Is this lock stale? A holder that is `gone` (see {@link holderState}) makes
 * it stale at once; an `alive` one never does (and its heartbeat is
 * forgotten). An `unknown` holder (another host, Windows without a creation
 * time, unreadable content or something that is not a file) is judged by its
 * heartbeat: a new or changed beat is remembered from `now`, and the lock is
 * stale once the same beat has been seen for more than `staleMillis`, all on
 * the waiter's monotonic clock, never comparing two machines' wall clocks.
 */
export const judgeStaleness = (input: {
  readonly state: HolderState
  readonly pid: number | undefined
  readonly beat: string
  readonly seen: WatchedBeat | undefined
  readonly now: number
  readonly staleMillis: number
}): StaleVerdict => {
  const { beat, now, seen, state } = input
  if (state === "gone") return { reason: `its holder, process ${input.pid}, is gone`, watch: seen }
  if (state === "alive") return { reason: undefined, watch: undefined }
  if (seen === undefined || seen.beat !== beat) return { reason: undefined, watch: { beat, since: now } }
  const still = now - seen.since
  return {
    reason: still > input.staleMillis ? `its heartbeat has not changed for ${formatDuration(Math.round(still))}` : undefined,
    watch: seen
  }
}

/**
 * How long a waiter sleeps before its next attempt: 10 ms growing by half
 * each attempt up to 250 ms, times `jitter` (drawn from 0.5 to 1.5) so that
 * waiters do not poll in step.
 */
export const backoffMillis = (attempt: number, jitter: number): number =>
  Math.round(Math.min(250, 10 * Math.pow(1.5, attempt)) * jitter)

/** Why a waiter keeps waiting on a stale lock it judged but may not delete. */
export const cannotRemoveNote = (reason: string, failed: string): string =>
  `it is stale (${reason}) but cannot be removed (${failed})`

/**
 * What the holder's heartbeat does with the lock it finds (`s`): touch it
 * while it still holds `token`, stop when the file vanished or changed hands.
 */
export const heartbeatStep = (s: LockSnapshot | undefined, token: string): "beat" | "stop" =>
  s === undefined || !holdsToken(token)(s) ? "stop" : "beat"

/**
 * What {@link LockTimeoutError} says when a waiter gives up on the file lock:
 * who held it, and what the user can do: delete a stale lock it could not
 * remove as its owner, resume or end a live holder (never broken), or delete
 * the lock when no process uses it.
 */
export const lockTimeoutMessage = (input: {
  readonly lockPath: string
  readonly timeoutMillis: number
  /** The holder last seen, when its lock could be read. */
  readonly holder: LockInfo | undefined
  /** Whether that holder was alive when the waiter gave up. */
  readonly holderAlive: boolean
  /** Set when the lock was stale but could not be removed ({@link cannotRemoveNote}). */
  readonly cannotRemove: string | undefined
  readonly platform: NodeJS.Platform
}): string => {
  const { holder, lockPath } = input
  const who = holder
    ? `held by process ${holder.pid} on ${holder.hostname} since ${holder.acquiredAt}`
    : "held by another process"
  return `Gave up after ${formatDuration(input.timeoutMillis)} waiting for the lock ${lockPath}, ${who}` +
    (input.cannotRemove !== undefined
      ? `: ${input.cannotRemove}. Delete it as its owner (or root), or use a storage folder of your own.`
      : input.holderAlive
      ? `, which is still running (a live holder is never interrupted; ` +
        (input.platform === "win32"
          ? `if it hangs, end it in Task Manager`
          : `if it is stopped, resume it with \`kill -CONT ${holder!.pid}\` or end it`) +
        `). Nothing was changed; try again.`
      : `. If no kimi-auth or OpenCode process is running, delete ${lockPath} and try again.`)
}

// ---------------------------------------------------------------------------
// Steps: the effects of one file lock, over the context its constructor wires.
// ---------------------------------------------------------------------------

/** What the steps of one file lock share: its paths, timings, file system, and what its waiters have seen. */
interface LockContext extends LockTimings {
  readonly fs: FileSystem.FileSystem
  readonly lockPath: string
  readonly breakPath: string
  readonly dir: string
  readonly hostname: string
  /** Per lock file watched: the heartbeat last seen and since when ({@link judgeStaleness}). */
  readonly watched: Map<string, WatchedBeat>
}

const monotonicMillis = Effect.map(Clock.monotonicTimeNanos, (n) => Number(n / 1_000_000n))

const ioError = (ctx: LockContext, what: string) => (e: PlatformError.PlatformError) =>
  new TokenStoreError({ path: ctx.lockPath, message: lockIoMessage(what, describeError(e), ctx.dir), cause: e })

/** Reads content and inode from one descriptor ({@link readLockFile}); `undefined` when the file is gone. */
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
    const state = holderState(s.info, ctx.hostname)
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
  const { fs } = ctx
  const startTime = selfStartTime()
  const info = newLockInfo({ pid: process.pid, hostname: ctx.hostname, acquiredAt: new Date(), token, startTime })
  const bytes = new TextEncoder().encode(lockFileContent(info))
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
}

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
    while (true) {
      if (yield* tryCreate(ctx, ctx.lockPath, token)) return
      const seen = yield* snapshot(ctx, ctx.lockPath)
      if (seen === undefined) continue
      last = seen
      const reason = yield* staleReason(ctx, ctx.lockPath, seen)
      if (reason !== undefined) {
        const failed = yield* breakStale(ctx, seen, reason)
        if (failed === undefined) continue
        // A stale lock we may not delete: wait like for a live one, never spin.
        cannotRemove = cannotRemoveNote(reason, failed)
      }
      yield* Effect.sleep(backoffMillis(attempt++, yield* Random.nextBetween(0.5, 1.5)))
    }
  })
  return loop.pipe(
    Effect.timeoutOrElse({
      duration: remainingMillis,
      orElse: () =>
        Effect.fail(
          new LockTimeoutError({
            path: ctx.lockPath,
            message: lockTimeoutMessage({
              lockPath: ctx.lockPath,
              timeoutMillis: ctx.timeoutMillis,
              holder: last?.info,
              holderAlive: holderState(last?.info, ctx.hostname) === "alive",
              cannotRemove,
              platform: process.platform
            })
          })
        )
    })
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
 * semaphore belongs to the returned value: share one instance per lock file
 * within a process.
 */
export const make = (options: FileLockOptions): Effect.Effect<FileLock, never, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const pathService = yield* Path.Path
    const semaphore = yield* Semaphore.make(1)
    const ctx: LockContext = {
      ...lockTimings(options),
      fs,
      lockPath: options.path,
      breakPath: `${options.path}.break`,
      dir: pathService.dirname(options.path),
      hostname: options.hostname ?? os.hostname(),
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
