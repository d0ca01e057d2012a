/**
 * FileLock: the cross-process lock file, with real files and real child
 * processes (the fixture takes the lock through `TokenStore.withLock`).
 *
 * Covers serialization in process, re-entrancy, release on success, failure and
 * interruption, a lock file that vanishes while held, a lock that appears
 * whole, a live holder outlasting the waiter's timeout (never broken for its
 * age, even under a skewed clock or SIGSTOP), a holder killed with SIGKILL
 * (pid + start time), a reused pid, a lock from another host (judged by its
 * heartbeat on the waiter's monotonic clock), a stale lock the waiter may not
 * delete (EPERM: backs off), and several waiters breaking one stale lock.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as PlatformError from "effect/PlatformError"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as FileLock from "../../src/lock/FileLock.js"
import { currentScope, processStartTime } from "../../src/lock/ProcessIdentity.js"
import { compiledLibrary, repoRoot, spawnNode, tempDir } from "../support/tmp.js"

const Platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
const script = path.join(repoRoot, "test", "fixtures", "store-lock.mjs")
const posix = process.platform !== "win32"

const makeLock = (lockPath: string, options: Partial<FileLock.FileLockOptions> = {}) =>
  FileLock.make({ path: lockPath, timeout: "10 seconds", staleAfter: "10 seconds", ...options }).pipe(
    Effect.provide(Platform)
  )

/** This process's host, PID namespace and boot, as its own locks record them: a lock planted with these is "this host's". */
const thisHost = (() => {
  const scope = Effect.runSync(currentScope())
  return { hostname: scope.hostname, platform: scope.platform, pidNamespace: scope.pidNamespace, bootId: scope.bootId }
})()
const startTimeOf = (pid: number) => Effect.runSync(processStartTime(pid))

const readInfo = (lockPath: string): FileLock.LockInfo | undefined => {
  try {
    return JSON.parse(fs.readFileSync(lockPath, "utf8"))
  } catch {
    return undefined
  }
}

/** A lock file as another process or host would leave it, with its mtime `ageMillis` in the past. */
const plantLock = (lockPath: string, info: Partial<FileLock.LockInfo>, ageMillis: number) => {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true })
  fs.writeFileSync(
    lockPath,
    JSON.stringify({ pid: 999_999, hostname: "elsewhere", acquiredAt: new Date().toISOString(), token: "planted", ...info })
  )
  const t = new Date(Date.now() - ageMillis)
  fs.utimesSync(lockPath, t, t)
}

const waitUntil = (predicate: () => boolean, what: string, timeoutMillis = 5_000) =>
  Effect.gen(function*() {
    const start = Date.now()
    while (!predicate()) {
      if (Date.now() - start > timeoutMillis) return yield* Effect.die(new Error(`timed out waiting until ${what}`))
      yield* Effect.sleep(10)
    }
  })

const lockDir = Effect.map(tempDir(), (d) => path.join(d, "store"))

/** A pid no process has: above Linux's default pid_max (4194304) is never used. */
const deadPid = 4_194_305

/**
 * Records rename events (creation, removal, rename) in `dir` until the scope
 * closes: a waiter must never move the holder's lock file, not even briefly.
 */
const watchRenames = (dir: string) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.sync(() => {
        const events: Array<string> = []
        const watcher = fs.watch(dir, (type, name) => {
          if (type === "rename") events.push(String(name))
        })
        return { events, watcher }
      }),
      ({ watcher }) => Effect.sync(() => watcher.close())
    ),
    ({ events }) => events
  )

describe("FileLock in one process", () => {
  it.live("serializes concurrent fibers; the file exists only while held", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      const lock = yield* makeLock(lockPath)
      let inside = 0
      let maxInside = 0
      let count = 0
      yield* Effect.forEach(
        Array.from({ length: 10 }),
        () =>
          lock.withLock(Effect.gen(function*() {
            inside++
            maxInside = Math.max(maxInside, inside)
            assert.strictEqual(readInfo(lockPath)?.pid, process.pid)
            const n = count
            yield* Effect.sleep(2)
            count = n + 1
            inside--
          })),
        { concurrency: "unbounded", discard: true }
      )
      assert.strictEqual(count, 10)
      assert.strictEqual(maxInside, 1)
      assert.isFalse(fs.existsSync(lockPath))
      if (posix) {
        assert.strictEqual(fs.statSync(path.dirname(lockPath)).mode & 0o777, 0o700)
      }
    }))

  it.live("is re-entrant in the holding fiber", () =>
    Effect.gen(function*() {
      const lock = yield* makeLock(path.join(yield* lockDir, "oauth.json.lock"), { timeout: "1 second" })
      const result = yield* lock.withLock(lock.withLock(lock.withLock(Effect.succeed("nested"))))
      assert.strictEqual(result, "nested")
    }))

  it.live("releases on failure and on interruption", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      const lock = yield* makeLock(lockPath, { timeout: "1 second" })
      const error = yield* Effect.flip(lock.withLock(Effect.fail("boom" as const)))
      assert.strictEqual(error, "boom")
      assert.isFalse(fs.existsSync(lockPath))

      const fiber = yield* Effect.forkChild(lock.withLock(Effect.never))
      yield* waitUntil(() => fs.existsSync(lockPath), "the lock is held")
      yield* Fiber.interrupt(fiber)
      assert.isFalse(fs.existsSync(lockPath))
      // Free again, for this process and for another instance (as another process would see it).
      assert.strictEqual(yield* lock.withLock(Effect.succeed(1)), 1)
      const other = yield* makeLock(lockPath, { timeout: "1 second" })
      assert.strictEqual(yield* other.withLock(Effect.succeed(2)), 2)
    }))

  it.live("a waiter interrupted while polling leaves the holder's lock alone", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      const holder = yield* makeLock(lockPath)
      const waiter = yield* makeLock(lockPath)
      const held = yield* Effect.forkChild(holder.withLock(Effect.never))
      yield* waitUntil(() => fs.existsSync(lockPath), "the lock is held")
      const token = readInfo(lockPath)?.token
      const renames = yield* watchRenames(path.dirname(lockPath))
      const waiting = yield* Effect.forkChild(waiter.withLock(Effect.void))
      yield* Effect.sleep(100)
      yield* Fiber.interrupt(waiting)
      const timedOut = yield* Effect.flip(
        Effect.flatMap(makeLock(lockPath, { timeout: "200 millis" }), (l) => l.withLock(Effect.void))
      )
      assert.strictEqual(timedOut._tag, "LockTimeoutError")
      yield* Effect.sleep(50)
      assert.strictEqual(readInfo(lockPath)?.token, token)
      // The waiters' own drafts (`*.new`, written whole and then linked) come and go; the lock itself never moves.
      assert.deepStrictEqual(renames.filter((n) => !n.endsWith(".new")), [])
      yield* Fiber.interrupt(held)
      assert.isFalse(fs.existsSync(lockPath))
    }))

  it.live("a lock file that vanishes while held does not crash the holder", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      // staleAfter 300 ms: the heartbeat runs every 100 ms.
      const lock = yield* makeLock(lockPath, { staleAfter: "300 millis" })
      const result = yield* lock.withLock(Effect.gen(function*() {
        fs.rmSync(lockPath)
        yield* Effect.sleep(450)
        return "finished"
      }))
      assert.strictEqual(result, "finished")
      // The heartbeat did not re-create it, and the release did not fail.
      assert.isFalse(fs.existsSync(lockPath))

      // Replaced by someone else while held: their lock survives our release.
      yield* lock.withLock(Effect.gen(function*() {
        fs.rmSync(lockPath)
        plantLock(lockPath, { pid: process.pid, ...thisHost, token: "someone-else" }, 0)
        yield* Effect.sleep(250)
      }))
      assert.strictEqual(readInfo(lockPath)?.token, "someone-else")
    }))

  it.live("several instances breaking the same stale lock at once never hold it together (30 rounds)", () =>
    Effect.gen(function*() {
      // Separate instances have separate semaphores: to the file they are separate processes.
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      let inside = 0
      let overlaps = 0
      for (let round = 0; round < 30; round++) {
        // Left by a dead process on this host: stale at once.
        plantLock(lockPath, { ...thisHost, pid: deadPid }, 60_000)
        const locks = yield* Effect.forEach(Array.from({ length: 6 }), () => makeLock(lockPath))
        yield* Effect.forEach(
          locks,
          (lock) =>
            lock.withLock(Effect.gen(function*() {
              if (++inside > 1) overlaps++
              yield* Effect.sleep(1)
              inside--
            })),
          { concurrency: "unbounded", discard: true }
        )
      }
      assert.strictEqual(overlaps, 0)
      assert.deepStrictEqual(fs.readdirSync(path.dirname(lockPath)), [])
    }), 30_000)

  it.live("a fresh lock from another host is waited for, then taken over once stale", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, {}, 0)
      const lock = yield* makeLock(lockPath, { staleAfter: "1 second", timeout: "5 seconds" })
      const start = Date.now()
      yield* lock.withLock(Effect.sync(() => assert.strictEqual(readInfo(lockPath)?.pid, process.pid)))
      const waited = Date.now() - start
      assert.isAtLeast(waited, 950)
      assert.isAtMost(waited, 4_000)
      // The taken-over file is gone, not kept beside the lock.
      assert.deepStrictEqual(fs.readdirSync(path.dirname(lockPath)), [])
    }))

  it.live("a lock from another host whose mtime looks an hour old is still watched for staleAfter on the waiter's own clock", () =>
    Effect.gen(function*() {
      // The other host's clock (or ours) may be off by an hour: its wall-clock mtime proves nothing.
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, {}, 3_600_000)
      const lock = yield* makeLock(lockPath, { staleAfter: "1500 millis", timeout: "8 seconds" })
      const start = Date.now()
      yield* lock.withLock(Effect.void)
      const waited = Date.now() - start
      assert.isAtLeast(waited, 1_450)
      assert.isAtMost(waited, 6_000)
    }))

  it.live("a lock from another host whose heartbeat keeps changing is never taken over", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, { token: "remote" }, 3_600_000)
      // The remote holder's heartbeat, from a clock an hour behind ours: only the change matters.
      let beat = 0
      const timer = setInterval(() => {
        const t = new Date(Date.now() - 3_600_000 + ++beat * 1000)
        fs.utimesSync(lockPath, t, t)
      }, 300)
      const lock = yield* makeLock(lockPath, { staleAfter: "1 second", timeout: "3 seconds" })
      const e = yield* Effect.flip(lock.withLock(Effect.void)).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.strictEqual(readInfo(lockPath)?.token, "remote")
    }))

  it.live("a live holder on this host is never broken for its age, even with a file an hour old (a waiter's clock ahead)", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, { pid: process.pid, ...thisHost, token: "live", startTime: startTimeOf(process.pid) }, 3_600_000)
      const lock = yield* makeLock(lockPath, { staleAfter: "500 millis", timeout: "2 seconds" })
      const e = yield* Effect.flip(lock.withLock(Effect.void))
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.include(e.message, "still running")
      assert.strictEqual(readInfo(lockPath)?.token, "live")
    }))

  it.live.skipIf(process.platform !== "linux")("a reused pid is not the holder: a lock whose pid now runs a process started at another time is stale at once", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, { pid: process.pid, ...thisHost, token: "old", startTime: "linux:1" }, 0)
      const lock = yield* makeLock(lockPath, { staleAfter: "10 seconds", timeout: "5 seconds" })
      const start = Date.now()
      yield* lock.withLock(Effect.sync(() => assert.notStrictEqual(readInfo(lockPath)?.token, "old")))
      assert.isAtMost(Date.now() - start, 2_000)
    }))

  it.live.skipIf(process.platform !== "linux")("processStartTime reads /proc/<pid>/stat field 22, and differs between processes", () =>
    Effect.sync(() => {
      const mine = startTimeOf(process.pid)
      assert.match(mine ?? "", /^linux:\d+$/)
      assert.strictEqual(startTimeOf(process.pid), mine)
      assert.isUndefined(startTimeOf(deadPid))
      assert.notStrictEqual(startTimeOf(1), mine)
    }))

  it.live("the lock appears whole: never empty or half written, even when writing it is slow (a holder paused mid-create)", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      fs.mkdirSync(path.dirname(lockPath), { recursive: true })
      // Every write takes 300 ms, as for a process stopped between creating the file and filling it.
      const slow = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (real) =>
          FileSystem.make({
            ...real,
            writeFile: (p, data, options) => Effect.andThen(Effect.sleep(300), real.writeFile(p, data, options)),
            open: (p, options) =>
              Effect.map(real.open(p, options), (h) => ({
                [FileSystem.FileTypeId]: FileSystem.FileTypeId,
                get stat() {
                  return h.stat
                },
                seek: (o, f) => h.seek(o, f),
                get sync() {
                  return h.sync
                },
                read: (b, o) => h.read(b, o),
                readAlloc: (n, o) => h.readAlloc(n, o),
                truncate: (l) => h.truncate(l),
                write: (b) => Effect.andThen(Effect.sleep(300), h.write(b)),
                writeAll: (b) => Effect.andThen(Effect.sleep(300), h.writeAll(b))
              }))
          }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      const lock = yield* FileLock.make({ path: lockPath, timeout: "5 seconds", staleAfter: "10 seconds" }).pipe(
        Effect.provide(Layer.mergeAll(slow, NodePath.layer))
      )
      let seen = 0
      let partial = 0
      const timer = setInterval(() => {
        let text: string
        try {
          text = fs.readFileSync(lockPath, "utf8")
        } catch {
          return
        }
        seen++
        try {
          JSON.parse(text)
        } catch {
          partial++
        }
      }, 1)
      yield* lock.withLock(Effect.sleep(100)).pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      assert.isAbove(seen, 0)
      assert.strictEqual(partial, 0, "a reader saw the lock file empty or half written")
    }))

  it.live("a stale lock the waiter may not delete (EPERM): it backs off instead of spinning, and says who must delete it", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, { ...thisHost, pid: deadPid }, 0)
      let renames = 0
      // As in a sticky folder: another user's file cannot be renamed or removed by us.
      const sticky = Layer.effect(
        FileSystem.FileSystem,
        Effect.map(FileSystem.FileSystem, (real) =>
          FileSystem.make({
            ...real,
            rename: (from, to) => {
              if (from !== lockPath) return real.rename(from, to)
              renames++
              return Effect.fail(PlatformError.systemError({
                _tag: "PermissionDenied",
                module: "FileSystem",
                method: "rename",
                cause: Object.assign(new Error("EPERM: operation not permitted"), { code: "EPERM" })
              }))
            }
          }))
      ).pipe(Layer.provide(NodeFileSystem.layer))
      const lock = yield* FileLock.make({ path: lockPath, timeout: "2 seconds", staleAfter: "10 seconds" }).pipe(
        Effect.provide(Layer.mergeAll(sticky, NodePath.layer))
      )
      const e = yield* Effect.flip(lock.withLock(Effect.void))
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.include(e.message, "cannot be removed (EPERM")
      assert.include(e.message, "as its owner")
      // A backoff of up to 250 ms over 2 s: a few dozen tries, not a busy loop of thousands.
      assert.isAtLeast(renames, 3)
      assert.isAtMost(renames, 60)
      assert.isTrue(fs.existsSync(lockPath))
    }))

  it.live("a live holder that outlasts the timeout fails the waiter with LockTimeoutError", () =>
    Effect.gen(function*() {
      const lockPath = path.join(yield* lockDir, "oauth.json.lock")
      plantLock(lockPath, { pid: process.pid, ...thisHost, token: "live" }, 0)
      const lock = yield* makeLock(lockPath, { timeout: "500 millis" })
      const start = Date.now()
      const e = yield* Effect.flip(lock.withLock(Effect.void))
      assert.isAtLeast(Date.now() - start, 450)
      assert.strictEqual(e._tag, "LockTimeoutError")
      if (e._tag !== "LockTimeoutError") return
      assert.strictEqual(e.path, lockPath)
      assert.include(e.message, lockPath)
      assert.include(e.message, `process ${process.pid}`)
      assert.include(e.message, "still running")
      assert.strictEqual(readInfo(lockPath)?.token, "live")
    }))
})

describe("FileLock across processes", () => {
  let lib = ""
  beforeAll(() => {
    lib = compiledLibrary()
  })

  it.live("a heartbeating holder in another process outlasting the timeout: LockTimeoutError", () =>
    Effect.gen(function*() {
      const dir = yield* lockDir
      const lockPath = path.join(dir, "oauth.json.lock")
      // staleAfter 1.2 s in both: without its heartbeat the holder's lock would go stale well before 3 s.
      const child = yield* spawnNode(script, [lib, dir, "hold", "5000"], { STALE_AFTER_MS: "1200" })
      const held = yield* child.waitForLine("held")
      const lock = yield* makeLock(lockPath, { staleAfter: "1200 millis", timeout: "3 seconds" })
      const start = Date.now()
      const e = yield* Effect.flip(lock.withLock(Effect.void))
      assert.isAtLeast(Date.now() - start, 2_900)
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.include(e.message, `process ${held.split(" ")[1]}`)
      assert.include(e.message, "still running")
      assert.strictEqual(readInfo(lockPath)?.pid, child.pid)
    }))

  it.live("a holder killed with SIGKILL: its lock is recovered at once (its pid is gone)", () =>
    Effect.gen(function*() {
      const dir = yield* lockDir
      const lockPath = path.join(dir, "oauth.json.lock")
      const child = yield* spawnNode(script, [lib, dir, "hold", "0"])
      yield* child.waitForLine("held")
      yield* child.kill("SIGKILL")
      yield* child.exited
      assert.strictEqual(readInfo(lockPath)?.pid, child.pid)
      const lock = yield* makeLock(lockPath)
      const start = Date.now()
      yield* lock.withLock(Effect.sync(() => assert.strictEqual(readInfo(lockPath)?.pid, process.pid)))
      // Far below the 10 s staleness: the dead pid is what freed it.
      assert.isAtMost(Date.now() - start, 3_000)
    }))

  it.live.skipIf(!posix)(
    "a paused holder (SIGSTOP) longer than staleAfter is never taken over: the waiter times out, the holder resumes and releases",
    () =>
      Effect.gen(function*() {
        const dir = yield* lockDir
        const lockPath = path.join(dir, "oauth.json.lock")
        const child = yield* spawnNode(script, [lib, dir, "hold", "1500"], { STALE_AFTER_MS: "1000" })
        yield* child.waitForLine("held")
        yield* child.kill("SIGSTOP")
        const theirs = readInfo(lockPath)
        const lock = yield* makeLock(lockPath, { staleAfter: "1 second", timeout: "3500 millis" })
        const e = yield* Effect.flip(lock.withLock(Effect.void))
        assert.strictEqual(e._tag, "LockTimeoutError")
        assert.include(e.message, `kill -CONT ${child.pid}`)
        assert.deepStrictEqual(readInfo(lockPath), theirs)
        yield* child.kill("SIGCONT")
        yield* child.waitForLine("released")
        const { code } = yield* child.exited
        assert.strictEqual(code, 0, child.output())
        yield* lock.withLock(Effect.sync(() => assert.strictEqual(readInfo(lockPath)?.pid, process.pid)))
        assert.isFalse(fs.existsSync(lockPath))
      }),
    20_000
  )

  it.live("several processes breaking one stale lock at once: exactly one holder at a time, no lost update", () =>
    Effect.gen(function*() {
      const dir = yield* lockDir
      const lockPath = path.join(dir, "oauth.json.lock")
      plantLock(lockPath, {}, 60_000)
      const children = yield* Effect.forEach(
        Array.from({ length: 5 }),
        () => spawnNode(script, [lib, dir, "count", "4", "2"], { STALE_AFTER_MS: "1000" })
      )
      for (const child of children) {
        const { code } = yield* child.exited
        assert.strictEqual(code, 0, child.output())
      }
      assert.strictEqual(Number(fs.readFileSync(path.join(dir, "counter"), "utf8")), 40)
      // Nothing left behind: no lock, no break lock, no moved-aside files.
      assert.deepStrictEqual(fs.readdirSync(dir).filter((f) => f.includes("lock")), [])
    }), 60_000)
})
