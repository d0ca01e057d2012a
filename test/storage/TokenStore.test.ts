/**
 * TokenStore: real files in a temporary folder (round trip, modes, files from
 * other tools, corrupt files, clear), a crash test with a writer killed by
 * SIGKILL at random moments, cross-process `withLock`, and the memory layer.
 *
 * The crash test runs `KIMI_AUTH_CRASH_ITERATIONS` kills (default 50; a fault
 * suite can set 200 or more).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { LOGIN_HINT } from "../../src/Errors.js"
import { KimiAuthConfig, type KimiAuthOptions } from "../../src/config/KimiAuthConfig.js"
import { decodeTokenFile, TokenSet } from "../../src/tokens/TokenSet.js"
import { TokenStore, type TokenStoreShape } from "../../src/storage/TokenStore.js"
import { compiledLibrary, repoRoot, spawnNode, tempDir } from "../support/tmp.js"

const CRASH_ITERATIONS = Number(process.env.KIMI_AUTH_CRASH_ITERATIONS ?? 50)
const CRASH_LANES = 5

const tokens = (name: string, expiresAt = 1_750_000_000) =>
  new TokenSet({
    accessToken: Redacted.make(`at-${name}`),
    refreshToken: Redacted.make(`rt-${name}`),
    tokenType: "Bearer",
    expiresIn: 900,
    scope: "kimi-code",
    expiresAt
  })

const fileLayer = (storageDir: string, options: KimiAuthOptions = {}) =>
  TokenStore.layerFile.pipe(
    Layer.provideMerge(DeviceIdentity.layer),
    Layer.provideMerge(KimiAuthConfig.layer({ storageDir, ...options })),
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
  )

/** Runs `f` with a file store over a fresh temporary folder (`<tmp>/store`, not yet created). */
const withStore = <A, E>(f: (store: TokenStoreShape, dir: string) => Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const dir = path.join(yield* tempDir(), "store")
    return yield* Effect.gen(function*() {
      return yield* f(yield* TokenStore, dir)
    }).pipe(Effect.provide(fileLayer(dir)))
  })

/** A store over `dir` with a fixed device id, so nothing but the store touches the folder. */
const fixedIdLayer = (storageDir: string) =>
  TokenStore.layerFile.pipe(
    Layer.provideMerge(DeviceIdentity.layerFixed("00000000-0000-4000-8000-0000000000aa")),
    Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
  )
const loadWithFixedId = (dir: string) => Effect.flatMap(TokenStore, (s) => s.load).pipe(Effect.provide(fixedIdLayer(dir)))
const saveWithFixedId = (dir: string, t: TokenSet) =>
  Effect.flatMap(TokenStore, (s) => s.save(t)).pipe(Effect.provide(fixedIdLayer(dir)))

const modeOf = (p: string) => fs.statSync(p).mode & 0o777

const refreshOf = (t: TokenSet | undefined) => (t ? Redacted.value(t.refreshToken) : undefined)

describe("TokenStore.layerFile", () => {
  it.live("round trip: save then load, with device_id in the file", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        assert.strictEqual(yield* store.load, undefined)
        yield* store.save(tokens("one"))
        const loaded = yield* store.load
        assert.strictEqual(refreshOf(loaded), "rt-one")
        assert.strictEqual(loaded && Redacted.value(loaded.accessToken), "at-one")
        assert.strictEqual(loaded?.expiresAt, 1_750_000_000)
        assert.strictEqual(store.path, path.join(dir, "oauth.json"))
        const onDisk = JSON.parse(fs.readFileSync(store.path, "utf8"))
        assert.strictEqual(onDisk.device_id, fs.readFileSync(path.join(dir, "device_id"), "utf8").trim())
        assert.strictEqual(onDisk.refresh_token, "rt-one")
        yield* store.save(tokens("two"))
        assert.strictEqual(refreshOf(yield* store.load), "rt-two")
        // Only oauth.json, device_id: no temporary files left behind.
        assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["device_id", "oauth.json"])
      })
    ))

  // The save of every refresh. Under Bun (OpenCode's runtime) it once wrote the file as spaces: the
  // reserved space was rewritten through a write whose position Bun ignores. Run under Bun by the Bun lane.
  it.live("a refresh's save (prepareSave, then commit) writes exactly the new file, under Node and Bun alike", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        yield* store.save(tokens("old"))
        const longName = "x".repeat(3000)
        for (const name of ["one", longName, "two"]) {
          yield* Effect.scoped(Effect.gen(function*() {
            const prepared = yield* store.prepareSave!
            assert.strictEqual(prepared.interrupted, undefined)
            yield* prepared.markInFlight
            yield* prepared.commit(tokens(name))
          }))
          const text = fs.readFileSync(store.path, "utf8")
          assert.notMatch(text, /^ *$/, "the token file was written as spaces")
          assert.strictEqual(JSON.parse(text).refresh_token, `rt-${name}`)
          assert.strictEqual(fs.statSync(store.path).size, Buffer.byteLength(text))
          assert.strictEqual(refreshOf(yield* store.load), `rt-${name}`)
          assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["device_id", "oauth.json"], "a marker or temporary file was left")
        }
      })
    ))

  it.live.skipIf(process.platform === "win32")("file 0600 in a 0700 folder; looser modes repaired on load and save", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        yield* store.save(tokens("one"))
        assert.strictEqual(modeOf(store.path), 0o600)
        assert.strictEqual(modeOf(dir), 0o700)
        fs.chmodSync(store.path, 0o644)
        fs.chmodSync(dir, 0o755)
        assert.strictEqual(refreshOf(yield* store.load), "rt-one")
        assert.strictEqual(modeOf(store.path), 0o600)
        assert.strictEqual(modeOf(dir), 0o700)
        fs.chmodSync(store.path, 0o666)
        fs.chmodSync(dir, 0o777)
        yield* store.save(tokens("two"))
        assert.strictEqual(modeOf(store.path), 0o600)
        assert.strictEqual(modeOf(dir), 0o700)
      })
    ))

  it.live.skipIf(process.platform === "win32")("oauth.json as a symbolic link: refused, and the target's mode is not changed", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const dir = path.join(root, "store")
      fs.mkdirSync(dir, { mode: 0o700 })
      const target = path.join(root, "elsewhere.json")
      fs.writeFileSync(target, JSON.stringify({ access_token: "at-x", refresh_token: "rt-x", expires_in: 900 }), { mode: 0o644 })
      fs.chmodSync(target, 0o644)
      fs.symlinkSync(target, path.join(dir, "oauth.json"))
      const e = yield* Effect.flip(loadWithFixedId(dir))
      assert.strictEqual(e._tag, "TokenStoreError")
      assert.include(e.message, "symbolic link")
      assert.include(e.message, "mv ")
      assert.strictEqual(modeOf(target), 0o644)
    }))

  it.live.skipIf(process.platform === "win32")("a symbolic link to a 777 folder: never chmod-ed through the link, refused with the fix", () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const real = path.join(root, "shared")
      fs.mkdirSync(real)
      fs.chmodSync(real, 0o777)
      const dir = path.join(root, "store")
      fs.symlinkSync(real, dir)
      const e = yield* Effect.flip(loadWithFixedId(dir))
      assert.strictEqual(e._tag, "TokenStoreError")
      assert.include(e.message, "can be written by other users")
      assert.include(e.message, `chmod go-w ${real}`)
      assert.strictEqual(modeOf(real), 0o777)
      const e2 = yield* Effect.flip(saveWithFixedId(dir, tokens("one")))
      assert.strictEqual(e2._tag, "TokenStoreError")
      assert.strictEqual(modeOf(real), 0o777)
      assert.isFalse(fs.existsSync(path.join(real, "oauth.json")))
    }))

  it.live.skipIf(process.platform === "win32")("a sticky 1777 folder keeps its mode and sticky bit, and is refused", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "tmp-like")
      fs.mkdirSync(dir)
      // chmod(1), not fs.chmodSync: OpenCode's Bun (1.3.14) drops the sticky bit there.
      execFileSync("chmod", ["1777", dir])
      assert.strictEqual(fs.statSync(dir).mode & 0o7777, 0o1777, "the test could not make a sticky folder")
      const e = yield* Effect.flip(saveWithFixedId(dir, tokens("one")))
      assert.strictEqual(e._tag, "TokenStoreError")
      assert.strictEqual(fs.statSync(dir).mode & 0o7777, 0o1777)
    }))

  it.live.skipIf(process.platform === "win32" || process.getuid?.() !== 0)("a folder or token file owned by another user is refused (as root: chown)", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      fs.mkdirSync(dir, { mode: 0o700 })
      fs.chownSync(dir, 65534, 65534)
      const e = yield* Effect.flip(loadWithFixedId(dir))
      assert.include(e.message, "belongs to another user")
      fs.chownSync(dir, 0, 0)
      fs.writeFileSync(path.join(dir, "oauth.json"), "{}", { mode: 0o600 })
      fs.chownSync(path.join(dir, "oauth.json"), 65534, 65534)
      const e2 = yield* Effect.flip(loadWithFixedId(dir))
      assert.include(e2.message, "belongs to another user")
      assert.include(e2.message, "chmod 600")
    }))

  it.live("a file written by another tool with exactly Kimi's fields loads", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        fs.mkdirSync(dir, { recursive: true })
        fs.writeFileSync(
          store.path,
          JSON.stringify({
            access_token: "at-kimi",
            refresh_token: "rt-kimi",
            token_type: "Bearer",
            expires_in: 900,
            scope: "kimi-code",
            expires_at: 1_760_000_000.5
          })
        )
        const loaded = yield* store.load
        assert.strictEqual(refreshOf(loaded), "rt-kimi")
        assert.strictEqual(loaded?.expiresAt, 1_760_000_000.5)
        assert.strictEqual(loaded?.scope, "kimi-code")
      })
    ))

  it.live("temporary files of a crashed writer are never read", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        yield* store.save(tokens("real"))
        fs.writeFileSync(path.join(dir, ".oauth.json.99999.deadbeef.tmp"), "{\"access_token\": \"at-tor")
        assert.strictEqual(refreshOf(yield* store.load), "rt-real")
        yield* store.save(tokens("next"))
        assert.strictEqual(refreshOf(yield* store.load), "rt-next")
        // A fresh one stays (it might belong to a live writer); only old ones are swept.
        assert.isTrue(fs.existsSync(path.join(dir, ".oauth.json.99999.deadbeef.tmp")))
        const old = new Date(Date.now() - 3600_000)
        fs.utimesSync(path.join(dir, ".oauth.json.99999.deadbeef.tmp"), old, old)
        yield* store.save(tokens("again"))
        assert.isFalse(fs.existsSync(path.join(dir, ".oauth.json.99999.deadbeef.tmp")))
      })
    ))

  const corruptCases: ReadonlyArray<readonly [string, string]> = [
    ["truncated JSON", "{\n  \"access_token\": \"at-secret-123\",\n  \"refresh_token\": \"rt-secret-4"],
    ["an empty file", ""],
    ["wrong types", JSON.stringify({ access_token: "at-secret-123", refresh_token: 42, expires_at: "soon" })],
    ["not an object", "[\"rt-secret-456\"]"]
  ]
  for (const [name, content] of corruptCases) {
    it.live(`a corrupt file (${name}) is moved aside, kept intact, and reported`, () =>
      withStore((store, dir) =>
        Effect.gen(function*() {
          fs.mkdirSync(dir, { recursive: true })
          fs.writeFileSync(store.path, content)
          const e = yield* Effect.flip(store.load)
          assert.strictEqual(e._tag, "CorruptTokenFileError")
          if (e._tag !== "CorruptTokenFileError") return
          assert.match(path.basename(e.movedTo), /^oauth\.json\.corrupt-\d{4}-\d\d-\d\dT[\d-]+(\.\d+)?Z/)
          assert.strictEqual(path.dirname(e.movedTo), dir)
          assert.strictEqual(fs.readFileSync(e.movedTo, "utf8"), content)
          assert.isFalse(fs.existsSync(store.path))
          assert.include(e.message, e.movedTo)
          assert.include(e.message, LOGIN_HINT)
          assert.notInclude(e.message, "secret")
          // Nothing left to read: the next load is a clean "not logged in".
          assert.strictEqual(yield* store.load, undefined)
          // A second corrupt file in the same instant gets its own name.
          fs.writeFileSync(store.path, content)
          const again = yield* Effect.flip(store.load)
          assert.strictEqual(again._tag, "CorruptTokenFileError")
          if (again._tag === "CorruptTokenFileError") assert.notStrictEqual(again.movedTo, e.movedTo)
        })
      ))
  }

  it.live("other IO errors are a TokenStoreError that says what to check, without contents", () =>
    withStore((store) =>
      Effect.gen(function*() {
        // The token file path is a folder: reading it fails with something else than "not found".
        fs.mkdirSync(store.path, { recursive: true })
        const e = yield* Effect.flip(store.load)
        assert.strictEqual(e._tag, "TokenStoreError")
        assert.include(e.message, store.path)
        assert.include(e.message, "check")
        const saveError = yield* Effect.flip(store.save(tokens("x")))
        assert.strictEqual(saveError._tag, "TokenStoreError")
        assert.include(saveError.message, "writable")
        assert.notInclude(saveError.message, "rt-x")
      })
    ))

  it.live("clear removes oauth.json only and reports whether there was one", () =>
    withStore((store, dir) =>
      Effect.gen(function*() {
        yield* store.save(tokens("one"))
        assert.isTrue(yield* store.clear)
        assert.isFalse(fs.existsSync(store.path))
        assert.isTrue(fs.existsSync(path.join(dir, "device_id")))
        assert.isFalse(yield* store.clear)
        assert.strictEqual(yield* store.load, undefined)
      })
    ))
})

describe("crash safety", () => {
  let lib = ""
  beforeAll(() => {
    lib = compiledLibrary()
  })

  it.live(`a writer killed with SIGKILL at random moments leaves the old or the new tokens (${CRASH_ITERATIONS} kills)`, () =>
    Effect.gen(function*() {
      const root = yield* tempDir()
      const script = path.join(repoRoot, "test", "fixtures", "store-writer.mjs")
      const lane = (n: number) =>
        Effect.gen(function*() {
          const dir = path.join(root, `lane-${n}`)
          const file = path.join(dir, "oauth.json")
          const seen = new Set<string>()
          for (let i = n; i < CRASH_ITERATIONS; i += CRASH_LANES) {
            yield* Effect.scoped(Effect.gen(function*() {
              const child = yield* spawnNode(script, [lib, dir])
              yield* child.waitForLine("ready")
              yield* Effect.sleep(Math.floor(Math.random() * 40))
              yield* child.kill("SIGKILL")
              const { signal } = yield* child.exited
              assert.strictEqual(signal, "SIGKILL", child.output())
            }))
            const decoded = yield* decodeTokenFile(fs.readFileSync(file, "utf8")).pipe(
              Effect.mapError((e) => new Error(`iteration ${i}: the file does not parse: ${e.reason}`)),
              Effect.orDie
            )
            const refresh = Redacted.value(decoded.tokens.refreshToken)
            const access = Redacted.value(decoded.tokens.accessToken)
            const name = refresh.startsWith("rt-old-") ? "old" : refresh.startsWith("rt-new-") ? "new" : "?"
            assert.notStrictEqual(name, "?", `iteration ${i}: unexpected refresh token`)
            assert.isTrue(access.startsWith(`at-${name}-`), `iteration ${i}: access and refresh token from different sets`)
            assert.strictEqual(decoded.tokens.expiresAt, name === "old" ? 1_700_000_000 : 1_800_000_000)
            seen.add(name)
            assert.isTrue(fs.readdirSync(dir).every((f) => !f.includes("corrupt")), `iteration ${i}: a corrupt file appeared`)
          }
          return seen
        })
      const seen = yield* Effect.forEach(Array.from({ length: CRASH_LANES }, (_, n) => n), lane, { concurrency: "unbounded" })
      // Sanity check that the kills land while the writer alternates.
      const all = new Set(seen.flatMap((s) => [...s]))
      if (CRASH_ITERATIONS >= 20) assert.strictEqual(all.size, 2)
    }), Math.max(120_000, CRASH_ITERATIONS * 1_500))
})

describe("TokenStore.withLock across processes", () => {
  let lib = ""
  beforeAll(() => {
    lib = compiledLibrary()
  })

  it.live("N processes x 2 fibers incrementing a shared counter inside withLock lose no update", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
      const script = path.join(repoRoot, "test", "fixtures", "store-lock.mjs")
      const processes = 4
      const perFiber = 8
      const children = yield* Effect.forEach(
        Array.from({ length: processes }),
        () => spawnNode(script, [lib, dir, "count", String(perFiber), "2"])
      )
      for (const child of children) {
        const { code } = yield* child.exited
        assert.strictEqual(code, 0, child.output())
        assert.include(child.output(), "done")
      }
      assert.strictEqual(Number(fs.readFileSync(path.join(dir, "counter"), "utf8")), processes * 2 * perFiber)
      assert.isFalse(fs.existsSync(path.join(dir, "oauth.json.lock")))
    }), 60_000)

  it.live("an in-process critical section can re-read the file it is about to replace", () =>
    withStore((store) =>
      store.withLock(Effect.gen(function*() {
        yield* store.save(tokens("one"))
        const before = yield* store.load
        yield* store.save(tokens(`${refreshOf(before)}-rotated`))
        assert.strictEqual(refreshOf(yield* store.load), "rt-rt-one-rotated")
        // Nested withLock in the holding fiber runs at once instead of waiting for itself.
        assert.strictEqual(yield* store.withLock(Effect.succeed(1)), 1)
      }))
    ))
})

describe("TokenStore.layerMemory", () => {
  it.effect("load / save / clear with the same semantics", () =>
    Effect.gen(function*() {
      const store = yield* TokenStore
      assert.strictEqual(refreshOf(yield* store.load), "rt-initial")
      yield* store.save(tokens("two"))
      assert.strictEqual(refreshOf(yield* store.load), "rt-two")
      assert.isTrue(yield* store.clear)
      assert.isFalse(yield* store.clear)
      assert.strictEqual(yield* store.load, undefined)
    }).pipe(Effect.provide(TokenStore.layerMemory(tokens("initial")))))

  it.effect("withLock serializes fibers and times out after 30 s (TestClock)", () =>
    Effect.gen(function*() {
      const store = yield* TokenStore
      const order: Array<string> = []
      const holder = yield* Effect.forkChild(
        store.withLock(Effect.gen(function*() {
          order.push("a-in")
          yield* Effect.sleep("20 seconds")
          order.push("a-out")
        }))
      )
      yield* Effect.yieldNow
      const second = yield* Effect.forkChild(store.withLock(Effect.sync(() => order.push("b"))))
      yield* TestClock.adjust("20 seconds")
      yield* Fiber.join(holder)
      yield* Fiber.join(second)
      assert.deepStrictEqual(order, ["a-in", "a-out", "b"])

      const stuck = yield* Effect.forkChild(store.withLock(Effect.never))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(Effect.flip(store.withLock(Effect.void)))
      yield* TestClock.adjust("29 seconds")
      assert.isUndefined(waiter.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const e = yield* Fiber.join(waiter)
      assert.strictEqual(e._tag, "LockTimeoutError")
      assert.include(e.message, "memory:oauth.json.lock")
      yield* Fiber.interrupt(stuck)
      // Released on interruption: the lock is free again.
      assert.strictEqual(yield* store.withLock(Effect.succeed("free")), "free")
    }).pipe(Effect.provide(TokenStore.layerMemory())))
})
