/**
 * The token manager over the real file store when the disk fails: a
 * FileSystem that answers ENOSPC on demand (every write, as a full disk does),
 * real files in a temporary folder, a scripted token endpoint, the TestClock.
 *
 * - a full disk before the refresh: no request is made (the refresh token is
 *   not spent) and the error names ENOSPC;
 * - the disk fills after the server answered: the call fails with a
 *   TokenStoreError naming ENOSPC, the process keeps the rotated tokens, and its
 *   next refresh uses them, never the spent refresh token still on disk;
 * - a refresh marker left by a process killed in flight turns the server's
 *   rejection into a message that says what happened.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FileSystem from "effect/FileSystem"
import * as Layer from "effect/Layer"
import * as PlatformError from "effect/PlatformError"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import * as fs from "node:fs"
import * as path from "node:path"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { KimiAuthConfig } from "../../src/config/KimiAuthConfig.js"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import { decodeTokenFile, encodeTokenFile, TokenSet } from "../../src/tokens/TokenSet.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { json, makeScripted, oauthError, type Recorded, type Step } from "../support/scripted.js"
import { refreshed, tokenSet } from "../support/tokens.js"
import { identityLayer } from "../support/settings.js"
import { tempDir } from "../support/tmp.js"

const DEVICE = "00000000-0000-4000-8000-000000000001"



/** A switch that makes every write of the wrapped FileSystem fail with ENOSPC. */
interface Disk {
  full: boolean
  /** When set, only files whose path matches fail (a disk with room for a small lock file, not for tokens). */
  only?: RegExp
}

const enospc = (method: string) =>
  PlatformError.systemError({
    _tag: "Unknown",
    module: "FileSystem",
    method,
    cause: Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC", errno: -28 })
  })

/** NodeFileSystem, except that writes fail with ENOSPC while `disk.full`. */
const faultyFileSystem = (disk: Disk) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (real) => {
      const fails = (p: string) => disk.full && (disk.only === undefined || disk.only.test(p))
      const wrap = (p: string, h: FileSystem.File): FileSystem.File => ({
        [FileSystem.FileTypeId]: FileSystem.FileTypeId,
        get stat() {
          return h.stat
        },
        seek: (offset, from) => h.seek(offset, from),
        get sync() {
          return h.sync
        },
        read: (buffer, options) => h.read(buffer, options),
        readAlloc: (size, options) => h.readAlloc(size, options),
        truncate: (length) => h.truncate(length),
        write: (buffer) => (fails(p) ? Effect.fail(enospc("write")) : h.write(buffer)),
        writeAll: (buffer) => (fails(p) ? Effect.fail(enospc("writeAll")) : h.writeAll(buffer))
      })
      return FileSystem.make({
        ...real,
        open: (p, options) => Effect.map(real.open(p, options), (h) => wrap(p, h)),
        writeFile: (p, data, options) => (fails(p) ? Effect.fail(enospc("writeFile")) : real.writeFile(p, data, options))
      })
    })
  ).pipe(Layer.provide(NodeFileSystem.layer))

const setup = (dir: string, disk: Disk, steps: (req: Recorded, i: number) => Step) => {
  const scripted = makeScripted(steps)
  const config = KimiAuthConfig.layer({ storageDir: dir, oauthHost: "https://auth.test" })
  const platform = Layer.mergeAll(faultyFileSystem(disk), NodePath.layer)
  const store = TokenStore.layerFile.pipe(
    Layer.provideMerge(DeviceIdentity.layerFixed(DEVICE)),
    Layer.provideMerge(config),
    Layer.provideMerge(platform)
  )
  const oauth = OAuthClient.layer.pipe(Layer.provide(Layer.mergeAll(scripted.layer, identityLayer())))
  const manager = TokenManager.layer({ unrefTimers: false }).pipe(Layer.provide(Layer.mergeAll(oauth, store)))
  return { requests: scripted.requests, layer: Layer.merge(manager, store) }
}

const writeTokens = (dir: string, t: TokenSet) => {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  fs.writeFileSync(path.join(dir, "oauth.json"), encodeTokenFile(t, DEVICE), { mode: 0o600 })
}

const refreshOnDisk = (dir: string) =>
  Effect.map(decodeTokenFile(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")), (f) => Redacted.value(f.tokens.refreshToken))

describe("TokenManager on a failing disk", () => {
  it.effect("a full disk before the refresh: no request, the refresh token stays unspent, the error names ENOSPC", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      writeTokens(dir, tokenSet(0, 900))
      const disk: Disk = { full: true }
      const { requests, layer } = setup(dir, disk, (_r, i) => refreshed(i + 1))
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const error = yield* Effect.flip(m.getAccessToken)
        assert.strictEqual(error._tag, "TokenStoreError")
        assert.include(error.message, "ENOSPC")
        assert.notInclude(error.message, "Unknown")
        assert.strictEqual(requests.length, 0, "the refresh token was spent although the save could not succeed")
        assert.strictEqual(yield* refreshOnDisk(dir), "rt-0")
        // Space again: the same refresh token still works.
        disk.full = false
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
        assert.strictEqual(yield* refreshOnDisk(dir), "rt-1")
      }).pipe(Effect.provide(layer))
    }))

  it.effect("room for the lock but not for the token file: the reservation fails before any request", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      writeTokens(dir, tokenSet(0, 900))
      const disk: Disk = { full: true, only: /\.tmp$/ }
      const { requests, layer } = setup(dir, disk, (_r, i) => refreshed(i + 1))
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const error = yield* Effect.flip(m.getAccessToken)
        assert.strictEqual(error._tag, "TokenStoreError")
        assert.include(error.message, "ENOSPC")
        assert.include(error.message, "no refresh was attempted")
        assert.strictEqual(requests.length, 0)
        assert.strictEqual(yield* refreshOnDisk(dir), "rt-0")
        assert.deepStrictEqual(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp")), [], "the reserved file was left behind")
      }).pipe(Effect.provide(layer))
    }))

  it.effect("the disk fills after the server answered: an ENOSPC error, and the rotated tokens in memory win over the spent file", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      writeTokens(dir, tokenSet(0, 900))
      const disk: Disk = { full: false }
      const { requests, layer } = setup(dir, disk, (req, i) => {
        // The server rotates; by the time the answer is written the disk is full.
        if (i === 0) disk.full = true
        // A replayed spent refresh token revokes the login, as Kimi does.
        return req.form["refresh_token"] === `rt-${i}` ? refreshed(i + 1) : oauthError("invalid_grant")
      })
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const error = yield* Effect.flip(m.getAccessToken)
        assert.strictEqual(error._tag, "TokenStoreError")
        assert.include(error.message, "ENOSPC")
        assert.strictEqual(yield* refreshOnDisk(dir), "rt-0")
        // This process keeps serving the new access token from memory.
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
        // The next refresh uses rt-1 from memory, not the spent rt-0 from disk.
        disk.full = false
        yield* TestClock.adjust("500 seconds")
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-2")
        assert.deepStrictEqual(requests.map((r) => r.form["refresh_token"]), ["rt-0", "rt-1"])
        assert.strictEqual(yield* refreshOnDisk(dir), "rt-2")
        assert.isFalse(fs.existsSync(path.join(dir, "oauth.json.refreshing")))
      }).pipe(Effect.provide(layer))
    }))

  it.effect("a refresh killed in flight: the next rejection says what happened and what to run", () =>
    Effect.gen(function*() {
      const dir = path.join(yield* tempDir(), "store")
      writeTokens(dir, tokenSet(0, 900))
      fs.writeFileSync(
        path.join(dir, "oauth.json.refreshing"),
        JSON.stringify({ pid: 4_000_000, hostname: "this-host", startedAt: "2026-11-30T10:00:00.000Z" })
      )
      const { layer } = setup(dir, { full: false }, () => oauthError("invalid_grant"))
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const error = yield* Effect.flip(m.getAccessToken)
        assert.strictEqual(error._tag, "NotLoggedInError")
        assert.include(error.message, "interrupted")
        assert.include(error.message, "process 4000000")
        assert.include(error.message, "kimi-auth login")
      }).pipe(Effect.provide(layer))
    }))
})
