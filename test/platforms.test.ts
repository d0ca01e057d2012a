/**
 * The Windows and macOS code paths that can be driven from Linux, through the
 * `platform` seams (the rest of Windows runs under Wine: test/windows/).
 *
 * - macOS: the lock's holder start time from `ps -o lstart=` (the real `ps`
 *   of this machine, no `/proc` read on that path) identifies a live process
 *   and tells a reused pid from it; the browser opener runs `open <url>` (a
 *   fake `open` first on PATH) and reports its failures.
 * - The lock's heartbeat survives one failed beat (Windows without a creation
 *   time judges a live holder by it).
 * - Windows: the creation-time parsers (`wmic`, PowerShell) agree on one
 *   instant; a live pid whose creation time cannot be read is judged by its
 *   heartbeat (`unknown`), never taken as alive; the rename over a file held
 *   open is retried for a bounded 10 s, only for EPERM/EACCES/EBUSY.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, describe, it } from "@effect/vitest"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as PlatformError from "effect/PlatformError"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { canOpenBrowser, opener, openBrowser } from "../src/cli/Browser.js"
import * as FileLock from "../src/lock/FileLock.js"
import { type HolderState, judgeHolder, type LockInfo } from "../src/lock/FileLockDecisions.js"
import * as ProcessIdentity from "../src/lock/ProcessIdentity.js"
import { retryWindowsRename } from "../src/storage/TokenStore.js"

/** `ProcessIdentity.processStartTime`, run (its `ps` child process is async). */
const startTimeOf = (pid: number, platform: NodeJS.Platform) => Effect.runPromise(ProcessIdentity.processStartTime(pid, platform))

/** The lock's verdict on `info` as a waiter on `platform` (host `hostname`, no PID namespace recorded) sees it. */
const holderState = (info: LockInfo, hostname: string, platform: NodeJS.Platform): Promise<HolderState> =>
  Effect.runPromise(Effect.flatMap(ProcessIdentity.makeHostProbe(platform), (probe) =>
    judgeHolder(info, { hostname, platform, pidNamespace: undefined, bootId: undefined }, probe)))

const hasPs = await startTimeOf(process.pid, "darwin").then((t) => t !== undefined, () => false)

/** A real child process that sleeps until killed. */
const sleeper = Effect.acquireRelease(
  Effect.sync(() => spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"], { stdio: "ignore" })),
  (child) => Effect.sync(() => child.kill("SIGKILL"))
)

const exited = (child: ReturnType<typeof spawn>) =>
  Effect.callback<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

describe("macOS: the lock holder's start time from ps", () => {
  it.effect.skipIf(!hasPs)("reads a live process's start time with ps, stable across reads, and tells a reused pid apart", () =>
    Effect.scoped(Effect.gen(function*() {
      const child = yield* sleeper
      const pid = child.pid!
      const first = yield* ProcessIdentity.processStartTime(pid, "darwin")
      assert.match(first ?? "", /^ps:\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4}$/)
      assert.strictEqual((yield* ProcessIdentity.processStartTime(pid, "darwin")), first)
      const host = os.hostname()
      const info = { pid, hostname: host, acquiredAt: new Date().toISOString(), token: "t", startTime: first }
      assert.strictEqual(yield* Effect.promise(() => holderState(info, host, "darwin")), "alive")
      // The same pid, recorded with another start time: a different process now has it.
      assert.strictEqual(
        yield* Effect.promise(() => holderState({ ...info, startTime: "ps:Mon Jan  1 00:00:00 2024" }, host, "darwin")),
        "gone"
      )
      child.kill("SIGKILL")
      yield* exited(child)
      assert.strictEqual((yield* ProcessIdentity.processStartTime(pid, "darwin")), undefined)
      assert.strictEqual(yield* Effect.promise(() => holderState(info, host, "darwin")), "gone")
    })))

  it.effect.skipIf(!hasPs)("on darwin the start time is ps's (its lstart text), on linux /proc's (clock ticks since boot)", () =>
    Effect.gen(function*() {
      const ps = yield* ProcessIdentity.processStartTime(process.pid, "darwin")
      const linux = yield* ProcessIdentity.processStartTime(process.pid, "linux")
      assert.match(ps ?? "", /^ps:/)
      assert.match(linux ?? "", /^linux:\d+$/)
    }))
})

describe("macOS: the browser opener", () => {
  /** A folder with a fake `open` that records its arguments and exits with `code`. */
  const fakeOpen = (code: number) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-open-"))
        const log = path.join(dir, "args")
        fs.writeFileSync(path.join(dir, "open"), `#!/bin/sh\nprintf '%s\\n' "$@" > '${log}'\nexit ${code}\n`, { mode: 0o755 })
        const saved = { PATH: process.env["PATH"], CI: process.env["CI"] }
        process.env["PATH"] = `${dir}${path.delimiter}${saved.PATH ?? ""}`
        delete process.env["CI"]
        return { dir, log, saved }
      }),
      ({ dir, saved }) =>
        Effect.sync(() => {
          process.env["PATH"] = saved.PATH
          if (saved.CI === undefined) delete process.env["CI"]
          else process.env["CI"] = saved.CI
          fs.rmSync(dir, { recursive: true, force: true })
        })
    )

  it("uses open <url> on darwin, cmd /c start on win32 (& escaped), xdg-open elsewhere", () => {
    const url = "https://www.kimi.com/code/authorize_device?user_code=AB-CD&x=1"
    assert.deepStrictEqual(opener(url, "darwin"), ["open", [url]])
    assert.deepStrictEqual(opener(url, "win32"), ["cmd", ["/c", "start", "", url.replace("&", "^&")]])
    assert.deepStrictEqual(opener(url, "linux"), ["xdg-open", [url]])
    // A Mac always has a display to open on; Linux needs DISPLAY or WAYLAND_DISPLAY; CI never opens.
    assert.isTrue(canOpenBrowser({}, "darwin"))
    assert.isTrue(canOpenBrowser({}, "win32"))
    assert.isFalse(canOpenBrowser({}, "linux"))
    assert.isFalse(canOpenBrowser({ CI: "1" }, "darwin"))
  })

  it.effect("runs open with the URL as its one argument and reports Opened", () =>
    Effect.scoped(Effect.gen(function*() {
      const { log } = yield* fakeOpen(0)
      const url = "https://www.kimi.com/code/authorize_device?user_code=AB-CD&x=1"
      const result = yield* openBrowser(url, 10_000, "darwin")
      assert.deepStrictEqual(result, { _tag: "Opened" })
      assert.strictEqual(fs.readFileSync(log, "utf8"), `${url}\n`)
    })))

  it.effect("reports an open that exits non-zero as Failed, with its exit code", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* fakeOpen(1)
      const result = yield* openBrowser("https://example.test/", 10_000, "darwin")
      assert.deepStrictEqual(result, { _tag: "Failed", reason: "open exited with code 1" })
    })))
})

describe("Windows: the process creation time", () => {
  it("wmic's CreationDate (local time and offset) and PowerShell's FILETIME name the same instant alike", () => {
    // 2026-12-02 17:50:12.123456 at UTC+01:00 is 16:50:12.123456 UTC.
    const wmic = ProcessIdentity.parseWmicCreationDate("\r\r\nCreationDate=20261202175012.123456+060\r\r\n\r\r\n")
    const micros = BigInt(Date.UTC(2026, 11, 2, 16, 50, 12)) * 1000n + 123456n + 11_644_473_600_000_000n
    assert.strictEqual(wmic, `win:${micros}`)
    assert.strictEqual(ProcessIdentity.parseFileTimeUtc(`${micros * 10n + 7n}\r\n`), wmic)
    // wmic writes UTF-16 to some pipes: the NULs are dropped.
    const utf16 = Buffer.from("CreationDate=20261202175012.123456+060", "utf16le").toString("latin1")
    assert.strictEqual(ProcessIdentity.parseWmicCreationDate(utf16), wmic)
    // West of UTC.
    assert.strictEqual(
      ProcessIdentity.parseWmicCreationDate("CreationDate=20261202105012.123456-360"),
      wmic
    )
  })

  it("anything else is no creation time: empty output, an error text, a missing process", () => {
    for (const out of ["", "No Instance(s) Available.", "Error: Command line not supported", "CreationDate=\r\n"]) {
      assert.strictEqual(ProcessIdentity.parseWmicCreationDate(out), undefined, out)
    }
    for (const out of ["", "Get-Process : Cannot find a process with the process identifier 5.", "12", "-1"]) {
      assert.strictEqual(ProcessIdentity.parseFileTimeUtc(out), undefined, out)
    }
  })

  it("a live pid whose creation time cannot be compared is judged by its heartbeat on win32, taken as alive elsewhere", async () => {
    const host = os.hostname()
    // This process is alive; its "win32" start time is unreadable here (no wmic, no PowerShell on Linux).
    const info = { pid: process.pid, hostname: host, acquiredAt: new Date().toISOString(), token: "t" }
    assert.strictEqual(await holderState(info, host, "win32"), "unknown")
    assert.strictEqual(await holderState({ ...info, startTime: "win:1" }, host, "win32"), "unknown")
    assert.strictEqual(await holderState(info, host, "linux"), "alive")
    // A free pid is gone on every platform.
    assert.strictEqual(await holderState({ ...info, pid: 4_194_305 }, host, "win32"), "gone")
  })
})

describe("the heartbeat, which Windows without a creation time relies on", () => {
  it.live("a failed beat (the lock file briefly unwritable) does not stop the heartbeat", () =>
    Effect.gen(function*() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-beat-"))
      const beats = { failed: 0, done: 0 }
      const real = yield* FileSystem.FileSystem
      const flaky: FileSystem.FileSystem = {
        ...real,
        utimes: (p, atime, mtime) =>
          beats.failed++ === 0
            ? Effect.fail(PlatformError.systemError({ _tag: "PermissionDenied", module: "FileSystem", method: "utimes" }))
            : Effect.tap(real.utimes(p, atime, mtime), () => Effect.sync(() => beats.done++))
      }
      const lock = yield* FileLock.make({ path: path.join(dir, "oauth.json.lock"), timeout: "5 seconds", staleAfter: "300 millis" }).pipe(
        Effect.provideService(FileSystem.FileSystem, flaky)
      )
      // Beats every 100 ms: the first fails, the ones after it must still come.
      yield* lock.withLock(Effect.sleep("800 millis"))
      fs.rmSync(dir, { recursive: true, force: true })
      assert.isAtLeast(beats.done, 3, `beats after the failed one: ${beats.done}`)
    }).pipe(Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))))
})

describe("Windows: the rename over a file another process holds open", () => {
  const refused = (tag: "PermissionDenied" | "Busy" | "NotFound") =>
    PlatformError.systemError({ _tag: tag, module: "FileSystem", method: "rename", syscall: "rename" })

  /** A rename that fails with `tag` for its first `failures` attempts; counts the attempts. */
  const flaky = (failures: number, tag: "PermissionDenied" | "Busy" | "NotFound" = "PermissionDenied") => {
    const state = { attempts: 0 }
    const rename = Effect.suspend(() =>
      state.attempts++ < failures ? Effect.fail(refused(tag)) : Effect.succeed("renamed" as const)
    )
    return { state, rename }
  }

  it.effect("retries EPERM/EBUSY on win32 until the reader lets go", () =>
    Effect.gen(function*() {
      const { rename, state } = flaky(6, "Busy")
      const fiber = yield* Effect.forkChild(retryWindowsRename(rename, "win32"))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(yield* Fiber.join(fiber), "renamed")
      assert.strictEqual(state.attempts, 7)
    }))

  it.effect("keeps trying at short intervals for the whole 10 s budget, then fails with the last error", () =>
    Effect.gen(function*() {
      const { rename, state } = flaky(1_000_000)
      const fiber = yield* Effect.forkChild(Effect.flip(retryWindowsRename(rename, "win32")))
      yield* TestClock.adjust("9 seconds")
      const at9 = state.attempts
      // 50 ms at most between attempts (jittered): many chances to land between two readers.
      assert.isAbove(at9, 9_000 / 60)
      assert.isUndefined(fiber.pollUnsafe(), "gave up before 10 s")
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error.reason._tag, "PermissionDenied")
      assert.isAtMost(state.attempts, at9 + 2_000 / 20)
    }))

  it.effect("does not retry other errors, nor anything off Windows", () =>
    Effect.gen(function*() {
      const notFound = flaky(1_000, "NotFound")
      yield* Effect.flip(retryWindowsRename(notFound.rename, "win32"))
      assert.strictEqual(notFound.state.attempts, 1)
      const linux = flaky(1_000)
      yield* Effect.flip(retryWindowsRename(linux.rename, "linux"))
      assert.strictEqual(linux.state.attempts, 1)
    }))
})
