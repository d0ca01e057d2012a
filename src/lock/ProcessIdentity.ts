/**
 * Who a process is, as a lock records its holder and a waiter checks it: pid,
 * start time, host name, platform, boot id and PID namespace.
 *
 * - **Start time**: an opaque string that changes when a pid is reused:
 *   field 22 of `/proc/<pid>/stat` (clock ticks since boot) on Linux, the
 *   creation time from `wmic` or PowerShell on Windows, `ps -o lstart=`
 *   elsewhere (macOS).
 * - **Where a pid means something** ({@link PidScope}): a pid and a start time
 *   only name a process for a waiter in the same PID namespace of the same
 *   boot of the same host. On Linux the namespace is `readlink
 *   /proc/self/ns/pid` and the boot `/proc/sys/kernel/random/boot_id`. A
 *   process outside the initial PID namespace (a container, a bubblewrap or
 *   flatpak sandbox, `unshare -p`) writes its namespace into the host name it
 *   records, so that older releases, which compare only host names, judge its
 *   lock by its heartbeat instead of by a pid that means something else to them.
 * - **`/proc` of another namespace**: under `unshare -p` without a fresh
 *   `/proc`, `/proc/<pid>` names the parent namespace's processes; then no
 *   other process's start time is read from it (only `/proc/self`, always ours).
 * - **No blocking child process**: `ps`, `wmic` and PowerShell run as async
 *   child processes inside Effects, with a timeout that kills them; their
 *   answers are cached for 2 s in a `Ref` owned by the probe ({@link makeHostProbe}),
 *   never in a module global.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as childProcess from "node:child_process"
import * as nodeFs from "node:fs"
import * as os from "node:os"
import { type HolderProbe, type PidScope, scopedHostname } from "./FileLockDecisions.js"

/**
 * True when a process with this pid exists (in this PID namespace). `EPERM`
 * means it exists but belongs to someone else. Anything that is not a plain
 * positive pid counts as alive: `kill(0)` or `kill(-1)` would address process
 * groups.
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

/** Field 22 (start time, clock ticks since boot) of a `/proc/<pid>/stat` text, as `linux:<ticks>`. */
export const parseProcStat = (stat: string): string | undefined => {
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  const start = fields[22 - 3]
  return start !== undefined && /^\d+$/.test(start) ? `linux:${start}` : undefined
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

/** A tool that reports a process's start time. */
interface StartTimeTool {
  readonly command: string
  readonly args: (pid: number) => ReadonlyArray<string>
  readonly parse: (out: string) => string | undefined
  readonly timeoutMillis: number
}

/** The Windows tools that can report a process's creation time, in the order they are tried. */
const windowsTools: ReadonlyArray<StartTimeTool> = [
  // Fast where it exists (Windows 10, Windows 11 before 24H2, or with the optional feature).
  {
    command: "wmic",
    args: (pid) => ["process", "where", `ProcessId=${pid}`, "get", "CreationDate", "/value"],
    parse: parseWmicCreationDate,
    timeoutMillis: 5_000
  },
  // Everywhere on Windows 10 and 11, slower to start (about half a second).
  {
    command: "powershell.exe",
    args: (pid) => ["-NoProfile", "-NonInteractive", "-Command", `(Get-Process -Id ${pid} -ErrorAction Stop).StartTime.ToFileTimeUtc()`],
    parse: parseFileTimeUtc,
    timeoutMillis: 5_000
  }
]

/** `ps -o lstart= -p <pid>` (macOS and other POSIX systems without `/proc`). */
const psTool: StartTimeTool = {
  command: "ps",
  args: (pid) => ["-o", "lstart=", "-p", String(pid)],
  parse: (out) => (out.trim() === "" ? undefined : `ps:${out.trim()}`),
  timeoutMillis: 2_000
}

/**
 * Runs `command` as an async child process and returns its standard output
 * (at most 64 KiB) when it exits with 0; `undefined` when it cannot start,
 * fails, or outlasts `timeoutMillis` (then it is killed, as on interruption).
 */
const runTool = (command: string, args: ReadonlyArray<string>, timeoutMillis: number): Effect.Effect<Buffer | undefined> =>
  Effect.callback<Buffer | undefined>((resume) => {
    let child: childProcess.ChildProcess
    try {
      child = childProcess.spawn(command, [...args], { stdio: ["ignore", "pipe", "ignore"], windowsHide: true })
    } catch {
      resume(Effect.succeed(undefined))
      return
    }
    const chunks: Array<Buffer> = []
    let size = 0
    child.stdout?.on("data", (chunk: Buffer) => {
      if (size < 65_536) chunks.push(chunk)
      size += chunk.length
    })
    child.once("error", () => resume(Effect.succeed(undefined)))
    child.once("close", (code) => resume(Effect.succeed(code === 0 ? Buffer.concat(chunks) : undefined)))
    return Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill()
    })
  }).pipe(Effect.timeoutOrElse({ duration: timeoutMillis, orElse: () => Effect.succeed(undefined) }))

/** One tool's answer for `pid`, parsed. */
const askTool = (tool: StartTimeTool, pid: number): Effect.Effect<string | undefined> =>
  Effect.map(runTool(tool.command, tool.args(pid), tool.timeoutMillis), (out) => {
    if (out === undefined) return undefined
    // wmic writes UTF-16 to a pipe on some versions.
    return tool.parse(out.includes(0) ? out.toString("utf16le") : out.toString("latin1"))
  })

const readText = (file: string): string | undefined => {
  try {
    return nodeFs.readFileSync(file, "utf8")
  } catch {
    return undefined
  }
}

const readLink = (file: string): string | undefined => {
  try {
    return nodeFs.readlinkSync(file)
  } catch {
    return undefined
  }
}

/**
 * Whether `/proc` shows this process's PID namespace: `/proc/self` names our
 * own pid. Under `unshare -p` without `--mount-proc` it names our pid in the
 * parent namespace, and `/proc/<pid>` would describe other processes.
 */
const procIsOurs = (): boolean => readLink("/proc/self") === String(process.pid)

/** `/proc/<pid>/stat`'s start time, when `/proc` is this namespace's. */
const linuxStartTime = (pid: number): string | undefined => {
  if (!Number.isSafeInteger(pid) || pid <= 0 || !procIsOurs()) return undefined
  const stat = readText(`/proc/${pid}/stat`)
  return stat === undefined ? undefined : parseProcStat(stat)
}

/**
 * When process `pid` started (see the module comment), read afresh;
 * `undefined` when it cannot be read (no such process, no tool for it, a
 * `/proc` of another namespace). `platform` is a seam for tests (the macOS
 * path runs on Linux too).
 */
export const processStartTime = (pid: number, platform: NodeJS.Platform = process.platform): Effect.Effect<string | undefined> => {
  if (!Number.isSafeInteger(pid) || pid <= 0) return Effect.succeed(undefined)
  if (platform === "linux") return Effect.sync(() => linuxStartTime(pid))
  if (platform !== "win32") return askTool(psTool, pid)
  return Effect.gen(function*() {
    for (const tool of windowsTools) {
      const found = yield* askTool(tool, pid)
      if (found !== undefined) return found
    }
    return undefined
  })
}

/** This process's start time: `/proc/self/stat` on Linux (right even with another namespace's `/proc`). */
export const ownStartTime = (platform: NodeJS.Platform = process.platform): Effect.Effect<string | undefined> =>
  platform === "linux"
    ? Effect.sync(() => {
      const stat = readText("/proc/self/stat")
      return stat === undefined ? undefined : parseProcStat(stat)
    })
    : processStartTime(process.pid, platform)

/**
 * Where this process's pids mean something ({@link PidScope}): the host name
 * (with the PID namespace when it is not the initial one), the platform, and
 * on Linux the PID namespace and boot id. `hostname` defaults to `os.hostname()`.
 */
export const currentScope = (
  hostname: string = os.hostname(),
  platform: NodeJS.Platform = process.platform
): Effect.Effect<PidScope> =>
  Effect.sync(() => {
    const pidNamespace = platform === "linux" ? readLink("/proc/self/ns/pid") : undefined
    const bootId = platform === "linux" ? readText("/proc/sys/kernel/random/boot_id")?.trim() || undefined : undefined
    return { hostname: scopedHostname(hostname, platform, pidNamespace), platform, pidNamespace, bootId }
  })

/** How long one answer of a tool (`ps`, `wmic`, PowerShell) is reused: a waiter polls every 10-250 ms. */
const TOOL_CACHE_MILLIS = 2_000

/**
 * The host's answers about processes, for {@link judgeHolder}: liveness by
 * `kill(pid, 0)`, start times as {@link processStartTime} reads them. On
 * Windows the tool is chosen once, by reading this process's own creation
 * time; when none answers (Wine has neither: its `wmic` knows no
 * `CreationDate`, it has no PowerShell) every start time is `undefined`.
 * Answers from a tool are reused for 2 s, in a cache owned by this probe.
 */
export const makeHostProbe = (platform: NodeJS.Platform = process.platform): Effect.Effect<HolderProbe> =>
  Effect.gen(function*() {
    const cache = yield* Ref.make(new Map<number, { readonly value: string | undefined; readonly at: number }>())
    const windowsTool = yield* Ref.make<StartTimeTool | null | undefined>(undefined)
    const chooseTool: Effect.Effect<StartTimeTool | null> = Effect.gen(function*() {
      if (platform !== "win32") return psTool
      const chosen = yield* Ref.get(windowsTool)
      if (chosen !== undefined) return chosen
      let found: StartTimeTool | null = null
      for (const tool of windowsTools) {
        if ((yield* askTool(tool, process.pid)) !== undefined) {
          found = tool
          break
        }
      }
      yield* Ref.set(windowsTool, found)
      return found
    })
    const cached = (pid: number): Effect.Effect<string | undefined> =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const hit = (yield* Ref.get(cache)).get(pid)
        if (hit !== undefined && now - hit.at < TOOL_CACHE_MILLIS) return hit.value
        const tool = yield* chooseTool
        const value = tool === null ? undefined : yield* askTool(tool, pid)
        yield* Ref.update(cache, (m) => new Map(m.size > 64 ? [] : m).set(pid, { value, at: now }))
        return value
      })
    return {
      isAlive: isPidAlive,
      startTime: (pid) =>
        !Number.isSafeInteger(pid) || pid <= 0
          ? Effect.succeed(undefined)
          : platform === "linux"
          ? Effect.sync(() => linuxStartTime(pid))
          : cached(pid)
    } satisfies HolderProbe
  })
