/**
 * Odd things at the lock path (issue 22), with real files: a dangling
 * symbolic link, a link to another file or to the token file itself, a FIFO
 * (also behind a link), a folder; and clocks that disagree between processes.
 *
 * None may be followed (the token file is never written, truncated or
 * touched), block, or make a waiter spin: a waiter that cannot take the lock
 * sleeps between tries. Each is judged like a lock whose holder cannot be
 * checked: taken over (moved aside, never its target) once unchanged for
 * `staleAfter` on the waiter's own monotonic clock, whatever the file's
 * timestamps say.
 *
 * Before: a dangling link made every waiter spin at 100 % CPU until its
 * timeout (the exclusive create failed, the read through the link found
 * nothing, and the loop tried again without sleeping), then fail.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileLock from "../../src/lock/FileLock.js"
import { tempDir } from "../support/tmp.js"

const Platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
const posix = process.platform !== "win32"

const makeLock = (lockPath: string, options: Partial<FileLock.FileLockOptions> = {}) =>
  FileLock.make({ path: lockPath, timeout: "5 seconds", staleAfter: "1 second", ...options }).pipe(Effect.provide(Platform))

/** A storage folder holding a token file. */
const storage = Effect.map(tempDir("kimi-lock-paths-"), (dir) => {
  const tokenFile = path.join(dir, "oauth.json")
  fs.writeFileSync(tokenFile, JSON.stringify({ version: 1, access_token: "at-0", refresh_token: "rt-0" }), { mode: 0o600 })
  const old = new Date(Date.now() - 60_000)
  fs.utimesSync(tokenFile, old, old)
  return { dir, tokenFile, lockPath: path.join(dir, "oauth.json.lock") }
})

/** Everything about a file that a write, a truncation or a touch through a link would change. */
const fingerprint = (file: string) => {
  const st = fs.statSync(file)
  return { bytes: fs.readFileSync(file, "utf8"), ino: st.ino, mtimeMs: st.mtimeMs, size: st.size }
}

/** Runs `self`, measuring its wall time and this process's CPU time (user + system), in ms. */
const measured = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const cpu = process.cpuUsage()
    const start = Date.now()
    const result = yield* Effect.result(self)
    const used = process.cpuUsage(cpu)
    return { result, wallMillis: Date.now() - start, cpuMillis: (used.user + used.system) / 1000 }
  })

/** Whatever was put at the lock path is gone, and the folder holds only `expected`. */
const leftOver = (dir: string) => fs.readdirSync(dir).sort()

describe.skipIf(!posix)("odd things at the lock path", () => {
  it.live("a dangling symbolic link: the waiter sleeps between tries (no spin), never creates its target, and takes the lock once it stood still for staleAfter", () =>
    Effect.gen(function*() {
      const { dir, lockPath } = yield* storage
      const target = path.join(dir, "no-such-file")
      fs.symlinkSync(target, lockPath)
      // Cannot be taken within 1.5 s (staleAfter 10 s): a waiter that spins burns 1.5 s of CPU meanwhile.
      const waiting = yield* measured(Effect.flatMap(makeLock(lockPath, { timeout: "1500 millis", staleAfter: "10 seconds" }), (l) => l.withLock(Effect.void)))
      assert.strictEqual(waiting.result._tag, "Failure")
      assert.isBelow(waiting.cpuMillis, waiting.wallMillis * 0.3, `CPU ${waiting.cpuMillis} ms in ${waiting.wallMillis} ms`)
      const taken = yield* measured(Effect.flatMap(makeLock(lockPath), (l) => l.withLock(Effect.sync(() => fs.lstatSync(lockPath).isFile()))))
      assert.deepStrictEqual(taken.result._tag === "Success" && taken.result.success, true)
      assert.isAtLeast(taken.wallMillis, 950)
      assert.isFalse(fs.existsSync(target))
      assert.deepStrictEqual(leftOver(dir), ["oauth.json"])
    }))

  it.effect("readLockFile: a link (dangling or not), a FIFO and a folder are seen as what they are, never as nothing or as their target", () =>
    Effect.gen(function*() {
      const { dir, lockPath, tokenFile } = yield* storage
      const at = (make: () => void) => {
        fs.rmSync(lockPath, { recursive: true, force: true })
        make()
        return FileLock.readLockFile(lockPath)?.raw
      }
      // Before: undefined (nothing there, try again at once) for the dangling link; the token file's text for the other.
      assert.strictEqual(at(() => fs.symlinkSync(path.join(dir, "no-such-file"), lockPath)), "<a symbolic link>")
      assert.strictEqual(at(() => fs.symlinkSync(tokenFile, lockPath)), "<a symbolic link>")
      assert.strictEqual(at(() => fs.mkdirSync(lockPath)), "<a folder>")
      assert.match(at(() => execFileSync("mkfifo", [lockPath])) ?? "", /^<not a regular file: mode 10\d{3}>$/)
      assert.isUndefined(at(() => undefined))
    }))

  for (const to of ["the token file", "another file"] as const) {
    it.live(`a symbolic link to ${to}: never followed; the file is neither written, truncated nor touched, and the link is moved aside`, () =>
      Effect.gen(function*() {
        const { dir, lockPath, tokenFile } = yield* storage
        const target = to === "the token file" ? tokenFile : path.join(dir, "notes.txt")
        if (to === "another file") fs.writeFileSync(target, "someone's notes\n")
        const before = fingerprint(target)
        fs.symlinkSync(target, lockPath)
        const lock = yield* makeLock(lockPath, { staleAfter: "500 millis" })
        // Twice: the heartbeat beats while held (staleAfter 500 ms: every 166 ms), and the release removes the lock.
        for (let i = 0; i < 2; i++) {
          yield* lock.withLock(Effect.gen(function*() {
            assert.isTrue(fs.lstatSync(lockPath).isFile())
            yield* Effect.sleep(400)
          }))
        }
        assert.deepStrictEqual(fingerprint(target), before)
        assert.deepStrictEqual(leftOver(dir), to === "the token file" ? ["oauth.json"] : ["notes.txt", "oauth.json"])
      }))
  }

  it.live("a symbolic link put in place of a held lock: the holder's heartbeat stops and its release leaves the link and the token file alone", () =>
    Effect.gen(function*() {
      const { lockPath, tokenFile } = yield* storage
      const before = fingerprint(tokenFile)
      const lock = yield* makeLock(lockPath, { staleAfter: "300 millis" })
      yield* lock.withLock(Effect.gen(function*() {
        fs.rmSync(lockPath)
        fs.symlinkSync(tokenFile, lockPath)
        yield* Effect.sleep(500)
      }))
      assert.isTrue(fs.lstatSync(lockPath).isSymbolicLink())
      assert.deepStrictEqual(fingerprint(tokenFile), before)
    }))

  it.live("a FIFO, also behind a link: never opened for a blocking read; taken over once it stood still for staleAfter", () =>
    Effect.gen(function*() {
      const { dir, lockPath } = yield* storage
      const fifo = path.join(dir, "pipe")
      execFileSync("mkfifo", [fifo])
      fs.symlinkSync(fifo, lockPath)
      const first = yield* measured(Effect.flatMap(makeLock(lockPath), (l) => l.withLock(Effect.void)))
      assert.strictEqual(first.result._tag, "Success")
      assert.isAtMost(first.wallMillis, 4_000)
      assert.isTrue(fs.lstatSync(fifo).isFIFO())
      execFileSync("mkfifo", [lockPath])
      const second = yield* measured(Effect.flatMap(makeLock(lockPath), (l) => l.withLock(Effect.void)))
      assert.strictEqual(second.result._tag, "Success")
      assert.deepStrictEqual(leftOver(dir), ["oauth.json", "pipe"])
    }))

  it.live("a folder: an empty one is removed once it stood still for staleAfter; one with files in it is moved aside, its files kept", () =>
    Effect.gen(function*() {
      const { dir, lockPath } = yield* storage
      fs.mkdirSync(lockPath)
      yield* Effect.flatMap(makeLock(lockPath), (l) => l.withLock(Effect.void))
      assert.deepStrictEqual(leftOver(dir), ["oauth.json"])
      fs.mkdirSync(lockPath)
      fs.writeFileSync(path.join(lockPath, "keep.txt"), "mine")
      yield* Effect.flatMap(makeLock(lockPath), (l) => l.withLock(Effect.void))
      const moved = leftOver(dir).filter((f) => f !== "oauth.json")
      assert.strictEqual(moved.length, 1)
      assert.match(moved[0]!, /^oauth\.json\.lock\.gone-/)
      assert.strictEqual(fs.readFileSync(path.join(dir, moved[0]!, "keep.txt"), "utf8"), "mine")
    }))
})

describe("clocks that disagree between processes", () => {
  /** A lock of a holder that cannot be checked from here, with its mtime `offsetMillis` from our clock. */
  const plant = (lockPath: string, offsetMillis: number) => {
    fs.writeFileSync(
      lockPath,
      JSON.stringify({ pid: 1, hostname: "elsewhere", acquiredAt: new Date(Date.now() + offsetMillis).toISOString(), token: "remote" })
    )
    const t = new Date(Date.now() + offsetMillis)
    fs.utimesSync(lockPath, t, t)
  }

  for (const [name, offset] of [["an hour ahead", 3_600_000], ["a day behind", -86_400_000]] as const) {
    it.live(`a holder's clock ${name}: its lock is neither broken early nor waited on for ever`, () =>
      Effect.gen(function*() {
        const { lockPath } = yield* storage
        plant(lockPath, offset)
        const taken = yield* measured(Effect.flatMap(makeLock(lockPath, { staleAfter: "1 second" }), (l) => l.withLock(Effect.void)))
        assert.strictEqual(taken.result._tag, "Success")
        assert.isAtLeast(taken.wallMillis, 950)
        assert.isAtMost(taken.wallMillis, 4_000)
      }))
  }

  it.live("a holder whose clock is an hour ahead and still beats: never taken over", () =>
    Effect.gen(function*() {
      const { lockPath } = yield* storage
      plant(lockPath, 3_600_000)
      let beat = 0
      const timer = setInterval(() => {
        const t = new Date(Date.now() + 3_600_000 + ++beat * 1000)
        fs.utimesSync(lockPath, t, t)
      }, 300)
      const e = yield* Effect.flip(Effect.flatMap(makeLock(lockPath, { staleAfter: "1 second", timeout: "2500 millis" }), (l) => l.withLock(Effect.void)))
        .pipe(Effect.ensuring(Effect.sync(() => clearInterval(timer))))
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.include(fs.readFileSync(lockPath, "utf8"), "remote")
    }))
})
