/**
 * The decisions of the file lock (`FileLock.ts`), as named pure functions
 * tested as tables in `test/lock/FileLock.decisions.test.ts`: what a lock
 * holds, whether its holder's pid can be judged from here
 * ({@link comparePidScope}), whose lock it is ({@link judgeHolder}), whether
 * it is stale, whether a breaker may take it over, how long a waiter backs
 * off, whether the heartbeat beats, and what the user reads when a wait
 * gives up. Nothing here touches the file system or the clock.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as PlatformError from "effect/PlatformError"
import * as Schema from "effect/Schema"

/**
 * What a lock file holds. Fields are only ever added (older releases read
 * the same file and ignore fields they do not know), never renamed or removed.
 */
export interface LockInfo {
  /** Process id of the holder, in its own PID namespace. */
  readonly pid: number
  /**
   * Host name of the holder; the pid is only checked when it is this host's.
   * Outside the initial PID namespace it names the namespace too ({@link scopedHostname}).
   */
  readonly hostname: string
  /** ISO time at which the lock was taken (for people; no decision reads it). */
  readonly acquiredAt: string
  /** Random id of this one acquisition; release removes the file only if it still matches. */
  readonly token: string
  /**
   * When the holder process started, as the OS reports it; with the pid, it
   * identifies the process. Absent in locks written by older versions or
   * where it cannot be read.
   */
  readonly startTime?: string | undefined
  /** The holder's `process.platform`. Absent in locks of older versions. */
  readonly platform?: string | undefined
  /** The holder's PID namespace (`readlink /proc/self/ns/pid`, Linux). Absent in older locks or elsewhere. */
  readonly pidNamespace?: string | undefined
  /** The holder's boot id (`/proc/sys/kernel/random/boot_id`, Linux). Absent in older locks or elsewhere. */
  readonly bootId?: string | undefined
}

const LockInfoJson = Schema.fromJsonString(Schema.Struct({
  pid: Schema.Number,
  hostname: Schema.String,
  acquiredAt: Schema.String,
  token: Schema.String,
  startTime: Schema.optional(Schema.String),
  platform: Schema.optional(Schema.String),
  pidNamespace: Schema.optional(Schema.String),
  bootId: Schema.optional(Schema.String)
}))
const decodeLockInfo = Schema.decodeUnknownOption(LockInfoJson)

/** What a waiter reads of a lock file, with the lock info decoded. */
export interface LockSnapshot {
  /** Inode and raw content (or the kind of thing at the path): equal snapshots are the same lock file. */
  readonly identity: string
  readonly mtimeMillis: number
  /** The holder's info; `undefined` when the content is not a lock's (unreadable, not a file, foreign). */
  readonly info: LockInfo | undefined
}

/** How long a lock waits, when it counts as stale, and how often its holder beats. */
export interface LockTimings {
  /** Longest total wait before `LockTimeoutError`. */
  readonly timeoutMillis: number
  /** A heartbeat unchanged this long (on the waiter's clock) makes an uncheckable holder's lock stale; at least 1. */
  readonly staleMillis: number
  /** How often the holder touches its lock: a third of `staleMillis`, at least 1. */
  readonly heartbeatMillis: number
}

/** The timings of a lock from its options (see {@link LockTimings}). */
export const lockTimings = (options: { readonly timeout: Duration.Input; readonly staleAfter: Duration.Input }): LockTimings => {
  const staleMillis = Math.max(1, Duration.toMillis(options.staleAfter))
  return {
    timeoutMillis: Duration.toMillis(options.timeout),
    staleMillis,
    heartbeatMillis: Math.max(1, Math.floor(staleMillis / 3))
  }
}

/** The snapshot of what was read at the lock path: its content decoded as lock info when it is one. */
export const toSnapshot = (
  read: { readonly identity: string; readonly mtimeMillis: number; readonly raw: string }
): LockSnapshot => ({ identity: read.identity, mtimeMillis: read.mtimeMillis, info: Option.getOrUndefined(decodeLockInfo(read.raw)) })

/** The info a new acquisition writes into its lock; a field that cannot be read is left out. */
export const newLockInfo = (input: {
  readonly pid: number
  readonly hostname: string
  readonly acquiredAt: Date
  readonly token: string
  readonly startTime: string | undefined
  readonly platform?: string | undefined
  readonly pidNamespace?: string | undefined
  readonly bootId?: string | undefined
}): LockInfo => ({
  pid: input.pid,
  hostname: input.hostname,
  acquiredAt: input.acquiredAt.toISOString(),
  token: input.token,
  ...(input.startTime === undefined ? {} : { startTime: input.startTime }),
  ...(input.platform === undefined ? {} : { platform: input.platform }),
  ...(input.pidNamespace === undefined ? {} : { pidNamespace: input.pidNamespace }),
  ...(input.bootId === undefined ? {} : { bootId: input.bootId })
})

/** The bytes of a lock file: its info as one JSON line. */
export const lockFileContent = (info: LockInfo): string => JSON.stringify(info) + "\n"

/** The kind of thing at the lock path that is not a regular file, as a snapshot's content names it. */
export const notAFile = (kind: "folder" | "symbolic link" | "other", mode: number): string =>
  kind === "folder" ? "<a folder>" : kind === "symbolic link" ? "<a symbolic link>" : `<not a regular file: mode ${mode.toString(8)}>`

/** Is what `s` read at the lock path a folder ({@link notAFile})? */
export const isFolder = (s: Pick<LockSnapshot, "identity">): boolean => s.identity.endsWith(`:${notAFile("folder", 0)}`)

// ---------------------------------------------------------------------------
// Whose lock is it.
// ---------------------------------------------------------------------------

/** The initial PID namespace's inode (`PROC_PID_INIT_INO` in Linux), as `readlink /proc/self/ns/pid` shows it. */
export const INITIAL_PID_NAMESPACE = "pid:[4026531836]"

/**
 * Where a process's pids mean something: its host name (as written into its
 * locks), platform, and on Linux its PID namespace and boot id.
 */
export interface PidScope {
  readonly hostname: string
  readonly platform: string
  readonly pidNamespace: string | undefined
  readonly bootId: string | undefined
}

/**
 * The host name a process writes into its locks: the plain host name, except
 * on Linux outside the initial PID namespace (or where the namespace cannot be
 * read), where it names the namespace: `box (pid namespace 4026532175)`. An
 * older release compares only host names, so it judges such a holder by its
 * heartbeat, never by a pid that means another process where it stands.
 */
export const scopedHostname = (hostname: string, platform: string, pidNamespace: string | undefined): string => {
  if (platform !== "linux" || pidNamespace === INITIAL_PID_NAMESPACE) return hostname
  const inode = pidNamespace === undefined ? undefined : /^pid:\[(\d+)\]$/.exec(pidNamespace)?.[1]
  return `${hostname} (pid namespace ${inode ?? pidNamespace ?? "unknown"})`
}

/**
 * Whether the pid and start time in a lock can be judged from `here`:
 * - `same`: same host name, platform, PID namespace and boot (or neither side
 *   knows namespaces or boots, as on macOS and Windows): a free pid means the
 *   holder is gone.
 * - `foreign`: another host, platform, PID namespace or boot: the pid names
 *   nothing here (or another process), so the lock is judged by its heartbeat.
 * - `partial`: one side recorded a namespace or boot and the other did not (a
 *   lock of an older release): only a live pid with the recorded start time
 *   proves anything (the holder is alive); a free or reused pid proves nothing.
 */
export const comparePidScope = (
  info: Pick<LockInfo, "hostname" | "platform" | "pidNamespace" | "bootId">,
  here: PidScope
): "same" | "foreign" | "partial" => {
  if (info.hostname !== here.hostname) return "foreign"
  if (info.platform !== undefined && info.platform !== here.platform) return "foreign"
  let partial = false
  for (const [theirs, ours] of [[info.pidNamespace, here.pidNamespace], [info.bootId, here.bootId]] as const) {
    if (theirs !== undefined && ours !== undefined && theirs !== ours) return "foreign"
    if ((theirs === undefined) !== (ours === undefined)) partial = true
  }
  return partial ? "partial" : "same"
}

/** What a waiter can know about a lock's holder. */
export type HolderState = "alive" | "gone" | "unknown"

/** How {@link judgeHolder} asks the host about a process; each question is asked only when needed. */
export interface HolderProbe {
  /** Whether a process with this pid exists here (`kill(pid, 0)`). */
  readonly isAlive: (pid: number) => boolean
  /** When process `pid` started, as seen from here; `undefined` when it cannot be read. */
  readonly startTime: (pid: number) => Effect.Effect<string | undefined>
}

/**
 * Whose lock is it, with the host's answers given by `probe`. No readable
 * info, or a pid that cannot be judged from here ({@link comparePidScope}
 * `foreign`): `unknown` (judged by heartbeat). Otherwise a free pid is
 * `gone`, and a start time that can be read is `alive` when it is the
 * recorded one, else `gone` (the pid was reused). No start time to compare:
 * `unknown` on Windows (pids are reused within seconds), `alive` elsewhere.
 * For a `partial` scope (a lock of an older release) only `alive` is
 * believed: what would be `gone` is `unknown`. The pid and start time are
 * only asked for when the answer depends on them (on Windows each question
 * spawns a tool).
 */
export const judgeHolder = (
  info: LockInfo | undefined,
  here: PidScope,
  probe: HolderProbe
): Effect.Effect<HolderState> =>
  Effect.gen(function*() {
    if (info === undefined) return "unknown"
    const scope = comparePidScope(info, here)
    if (scope === "foreign") return "unknown"
    const unlessPartial = (state: HolderState): HolderState => (scope === "partial" && state === "gone" ? "unknown" : state)
    if (!probe.isAlive(info.pid)) return unlessPartial("gone")
    const now = info.startTime === undefined ? undefined : yield* probe.startTime(info.pid)
    if (now !== undefined) return unlessPartial(now === info.startTime ? "alive" : "gone")
    return here.platform === "win32" ? "unknown" : "alive"
  })

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
 * Is this lock stale? A holder that is `gone` (see {@link judgeHolder}) makes
 * it stale at once; an `alive` one never does (and its heartbeat is
 * forgotten). An `unknown` holder (another host, PID namespace or boot, Windows without a creation
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

/** How many tries in a row a waiter may make without sleeping (after a lock vanished or was broken). */
export const MAX_TRIES_AT_ONCE = 3

/**
 * Whether a waiter may try again at once rather than back off: only after
 * the lock vanished under it or it removed a stale one, and at most
 * {@link MAX_TRIES_AT_ONCE} times in a row. Whatever is at the lock path (a
 * dangling link, a file that vanishes at every read), a waiter that cannot
 * take the lock sleeps between tries, never spins.
 */
export const triesAtOnce = (triesSoFar: number): boolean => triesSoFar < MAX_TRIES_AT_ONCE

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

/** A duration for people: whole seconds as `30 s`, others with one decimal. */
export const formatDuration = (millis: number): string =>
  millis % 1000 === 0 ? `${millis / 1000} s` : `${(millis / 1000).toFixed(1)} s`

/** What `LockTimeoutError` says when another operation of this process held the lock for the whole wait. */
export const inProcessTimeoutMessage = (path: string, timeoutMillis: number): string =>
  `Gave up after ${formatDuration(timeoutMillis)} waiting for the lock ${path}: another operation in this ` +
  `process held it all that time. Try again; if it keeps happening, restart the process.`
