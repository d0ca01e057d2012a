/**
 * The notes beside the token file (`Notes.ts`, `NoteOps.ts`) with odd things
 * at their paths: dangling links, links to the token file or to another file,
 * FIFOs, empty folders and folders holding a file. Real files, real links,
 * real FIFOs (mkfifo), through the store's own operations.
 *
 * Before: the in-flight marker was written through its path, so a link there
 * to the token file replaced the login with the marker (hunt case 4) and a
 * FIFO there blocked the refresh for good (case 3); a folder at
 * `logged-out.json` made `logout` fail with "check writable (EISDIR)"; a
 * folder at the forced-refresh note silently lost the one-a-minute rule
 * (case 7b); a FIFO as the token file hung `logout` (case 3b).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { KimiAuthConfig } from "../../src/config/KimiAuthConfig.js"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import {
  fingerprint,
  ForcedRefreshJson,
  forcedRefreshPath,
  forcedRefreshSeen,
  inFlightPath,
  isLoggedOut,
  logoutMarkerPath,
  readNoteSync,
  recordLoggedOut,
  refusalPath
} from "../../src/storage/Notes.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { tokenSet } from "../support/tokens.js"

const posix = process.platform !== "win32"
const temps: Array<string> = []
afterEach(() => {
  for (const t of temps.splice(0)) fs.rmSync(t, { recursive: true, force: true })
})

const newDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-notes-"))
  fs.chmodSync(dir, 0o700)
  temps.push(dir)
  return dir
}

const storeLayer = (storageDir: string) =>
  TokenStore.layerFile.pipe(
    Layer.provideMerge(DeviceIdentity.layerFixed("00000000-0000-4000-8000-0000000000aa")),
    Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
    Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
  )

/** Runs `f` with the file store over `dir`, failing if it takes more than 5 s (a FIFO that blocks). */
const withStore = <A, E>(dir: string, f: (store: TokenStore["Service"]) => Effect.Effect<A, E, Scope.Scope>) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(TokenStore, f)).pipe(
      Effect.timeout("5 seconds"),
      Effect.provide(storeLayer(dir))
    )
  )

const login = tokenSet(1, 2_000_000_000)

/** The odd things planted at a note's path `p` in `dir`. */
const oddThings: ReadonlyArray<readonly [string, (p: string, dir: string) => void]> = [
  ["a dangling symbolic link", (p) => fs.symlinkSync(`${p}.nowhere`, p)],
  ["a symbolic link to the token file", (p, dir) => fs.symlinkSync(path.join(dir, "oauth.json"), p)],
  ["a symbolic link to another file", (p, dir) => fs.symlinkSync(path.join(dir, "other"), p)],
  ["a FIFO", (p) => execFileSync("mkfifo", ["-m", "600", p])],
  ["an empty folder", (p) => fs.mkdirSync(p)],
  ["a folder holding a file", (p) => {
    fs.mkdirSync(p)
    fs.writeFileSync(path.join(p, "keep"), "keep me")
  }]
]

/** A folder with a login, another file, and `odd` planted at the note `note(dir)`. */
const planted = async (odd: (p: string, dir: string) => void, note: (dir: string) => string) => {
  const dir = newDir()
  await withStore(dir, (s) => s.save(login))
  fs.writeFileSync(path.join(dir, "other"), "another file: keep me\n")
  odd(note(dir), dir)
  return dir
}

const tokenFileOf = (dir: string) => path.join(dir, "oauth.json")
const bytes = (p: string) => fs.readFileSync(p, "utf8")
const kindAt = (p: string) => {
  try {
    const st = fs.lstatSync(p)
    return st.isFile() ? "file" : st.isDirectory() ? "folder" : st.isSymbolicLink() ? "link" : "other"
  } catch {
    return "missing"
  }
}
const holdsAFile = (name: string) => name === "a folder holding a file"

describe.runIf(posix)("odd things at the in-flight marker (oauth.json.refreshing)", () => {
  it.each(oddThings)("%s: marking and abandoning never block, follow or touch the login", async (name, odd) => {
    const dir = await planted(odd, (d) => inFlightPath(tokenFileOf(d)))
    const before = bytes(tokenFileOf(dir))
    const marker = inFlightPath(tokenFileOf(dir))
    const interrupted = await withStore(dir, (s) =>
      Effect.gen(function*() {
        const prepared = yield* s.prepareSave!
        yield* prepared.markInFlight
        const kindWhileMarked = kindAt(marker)
        yield* prepared.abandon
        return { interrupted: prepared.interrupted, kindWhileMarked }
      }))
    // Whatever was there is an earlier refresh of unknown owner; it is never read through.
    expect(interrupted.interrupted).toEqual({ pid: 0, hostname: "?", startedAt: "?" })
    expect(interrupted.kindWhileMarked).toBe(holdsAFile(name) ? "folder" : "file")
    expect(kindAt(marker)).toBe(holdsAFile(name) ? "folder" : "missing")
    expect(bytes(tokenFileOf(dir))).toBe(before)
    expect(bytes(path.join(dir, "other"))).toBe("another file: keep me\n")
    if (holdsAFile(name)) expect(bytes(path.join(marker, "keep"))).toBe("keep me")
    // And the login still loads.
    const loaded = await withStore(dir, (s) => s.load)
    expect(loaded && Redacted.value(loaded.refreshToken)).toBe("rt-1")
  })

  it.each(oddThings)("%s: a refresh's commit saves the new login and leaves no marker", async (name, odd) => {
    const dir = await planted(odd, (d) => inFlightPath(tokenFileOf(d)))
    await withStore(dir, (s) =>
      Effect.gen(function*() {
        const prepared = yield* s.prepareSave!
        yield* prepared.markInFlight
        yield* prepared.commit(tokenSet(2, 2_000_000_000))
      }))
    const loaded = await withStore(dir, (s) => s.load)
    expect(loaded && Redacted.value(loaded.refreshToken)).toBe("rt-2")
    expect(kindAt(inFlightPath(tokenFileOf(dir)))).toBe(holdsAFile(name) ? "folder" : "missing")
    expect(bytes(path.join(dir, "other"))).toBe("another file: keep me\n")
  })
})

describe.runIf(posix)("odd things at logged-out.json", () => {
  it.each(oddThings)("%s: logout records the login and removes it, or says what to remove", async (name, odd) => {
    const dir = await planted(odd, logoutMarkerPath)
    const result = await Effect.runPromise(
      Effect.flatMap(TokenStore, (s) => Effect.result(s.clear)).pipe(
        Effect.timeout("5 seconds"),
        Effect.provide(storeLayer(dir))
      )
    )
    expect(bytes(path.join(dir, "other"))).toBe("another file: keep me\n")
    if (holdsAFile(name)) {
      // Nothing removed, and the message names the folder and the command that removes it.
      expect(result._tag).toBe("Failure")
      const message = result._tag === "Failure" ? result.failure.message : ""
      expect(message).toContain(`${logoutMarkerPath(dir)} is a folder`)
      expect(message).toContain(`mv ${logoutMarkerPath(dir)} ${logoutMarkerPath(dir)}.bad`)
      expect(message).not.toContain("EISDIR")
      expect(fs.existsSync(tokenFileOf(dir))).toBe(true)
      expect(bytes(path.join(logoutMarkerPath(dir), "keep"))).toBe("keep me")
      return
    }
    expect(result).toMatchObject({ _tag: "Success", success: true })
    expect(kindAt(logoutMarkerPath(dir))).toBe("file")
    expect(fs.statSync(logoutMarkerPath(dir)).mode & 0o777).toBe(0o600)
    expect(isLoggedOut(dir, ["rt-1"])).toBe(true)
    expect(fs.existsSync(tokenFileOf(dir))).toBe(false)
  })

  it("a marker that is a link is never read through: it counts as unreadable, so every copy counts as logged out", () => {
    const dir = newDir()
    const elsewhere = newDir()
    recordLoggedOut(elsewhere, ["rt-other"])
    fs.symlinkSync(logoutMarkerPath(elsewhere), logoutMarkerPath(dir))
    expect(isLoggedOut(dir, ["rt-new"])).toBe(true)
    // Recording replaces the link with a file of our own; the link's target is untouched.
    const target = bytes(logoutMarkerPath(elsewhere))
    recordLoggedOut(dir, ["rt-old"])
    expect(kindAt(logoutMarkerPath(dir))).toBe("file")
    expect(bytes(logoutMarkerPath(elsewhere))).toBe(target)
    expect(isLoggedOut(dir, ["rt-new"])).toBe(false)
    expect(isLoggedOut(dir, ["rt-old"])).toBe(true)
  })
})

describe.runIf(posix)("odd things at the token file on logout", () => {
  it.each([
    ["a FIFO", "a named pipe (FIFO)", (p: string) => execFileSync("mkfifo", ["-m", "600", p])],
    ["a folder", "a folder", (p: string) => fs.mkdirSync(p)]
  ] as const)("%s: clear ends at once, refuses it by name, leaves it, records nothing", async (_, kind, odd) => {
    const dir = newDir()
    odd(tokenFileOf(dir))
    const result = await Effect.runPromise(
      Effect.flatMap(TokenStore, (s) => Effect.result(s.clear)).pipe(
        Effect.timeout("5 seconds"),
        Effect.provide(storeLayer(dir))
      )
    )
    expect(result._tag).toBe("Failure")
    const message = result._tag === "Failure" ? result.failure.message : ""
    expect(message).toContain(`${tokenFileOf(dir)} is ${kind}, not a regular file`)
    expect(message).toContain(`mv ${tokenFileOf(dir)} ${tokenFileOf(dir)}.bad`)
    expect(kindAt(tokenFileOf(dir))).not.toBe("missing")
    expect(kindAt(logoutMarkerPath(dir))).toBe("missing")
  })
})

describe.runIf(posix)("odd things at the forced-refresh and refusal notes", () => {
  const notes: ReadonlyArray<readonly [string, (dir: string) => string]> = [
    ["oauth.json.forced-refresh", (d) => forcedRefreshPath(tokenFileOf(d))],
    ["oauth.json.refused", (d) => refusalPath(tokenFileOf(d))]
  ]
  const cases = notes.flatMap(([note, at]) => oddThings.map(([name, odd]) => [note, name, at, odd] as const))

  it.each(cases)("%s, %s: read without following, written by replacing it, the login untouched", async (note, name, at, odd) => {
    const dir = await planted(odd, at)
    const before = bytes(tokenFileOf(dir))
    const now = Date.now()
    const seen = await withStore(dir, (s) =>
      Effect.gen(function*() {
        const beforeWrite = { forced: yield* s.forcedRefreshSeen(login, now), refusal: yield* s.refusalOf(login) }
        yield* s.noteForcedRefresh(login, now - 100)
        yield* s.recordRefusal(login, "HTTP 400 invalid_grant")
        return { beforeWrite, forced: yield* s.forcedRefreshSeen(login, now), refusal: yield* s.refusalOf(login) }
      }))
    expect(bytes(tokenFileOf(dir))).toBe(before)
    expect(bytes(path.join(dir, "other"))).toBe("another file: keep me\n")
    expect(seen.beforeWrite.refusal).toBeUndefined()
    if (holdsAFile(name)) {
      // Cannot be written: the forced-refresh note reads as one just seen (fails closed), the refusal as none.
      expect(kindAt(at(dir))).toBe("folder")
      if (note === "oauth.json.refused") expect(seen.refusal).toBeUndefined()
      else expect(seen.forced).toEqual({ atMillis: now, issuedIt: undefined })
      return
    }
    expect(seen.refusal?.detail).toBe("HTTP 400 invalid_grant")
    expect(seen.forced?.issuedIt).toBe(true)
    expect(seen.forced?.atMillis).toBeGreaterThanOrEqual(now - 100)
    expect(seen.forced?.atMillis).toBeLessThanOrEqual(now)
    expect(kindAt(at(dir))).toBe("file")
    expect(fs.statSync(at(dir)).mode & 0o777).toBe(0o600)
  })

  it("what is written reads back, in the formats of earlier releases", async () => {
    const dir = newDir()
    await withStore(dir, (s) =>
      Effect.gen(function*() {
        yield* s.save(login)
        yield* s.noteForcedRefresh(login, 1_234)
        yield* s.recordRefusal(login, "HTTP 400 invalid_grant; more")
      }))
    const forced = JSON.parse(bytes(forcedRefreshPath(tokenFileOf(dir))))
    // An older release reads `at` only; the fingerprint is the 32-digit one of the logout marker.
    expect(forced).toEqual({ at: 1_234, access_token_sha256: fingerprint("at-1") })
    const refused = JSON.parse(bytes(refusalPath(tokenFileOf(dir))))
    expect(Object.keys(refused)).toEqual(["at", "detail", "refresh_token_sha256"])
    expect(refused.refresh_token_sha256).toBe(fingerprint("rt-1", 16))
    expect(JSON.stringify(refused)).not.toContain("rt-1")
    const r = await withStore(dir, (s) => s.refusalOf(login))
    expect(r?.detail).toBe("HTTP 400 invalid_grant; more")
    expect(await withStore(dir, (s) => s.refusalOf(tokenSet(2, 2_000_000_000)))).toBeUndefined()
  })

  it("an older release's note ({ at } only) still reads", () => {
    const dir = newDir()
    fs.writeFileSync(forcedRefreshPath(tokenFileOf(dir)), JSON.stringify({ at: 5_000 }) + "\n")
    expect(readNoteSync(forcedRefreshPath(tokenFileOf(dir)), ForcedRefreshJson)).toEqual({ _tag: "Read", value: { at: 5_000 } })
  })
})

describe("forcedRefreshSeen: the forced-refresh note on the reader's clock", () => {
  const NOW = 10_000_000
  const note = (at: number, named?: string) =>
    ({ _tag: "Read", value: named === undefined ? { at } : { at, access_token_sha256: fingerprint(named) } }) as const
  it.each([
    ["no note", { _tag: "Missing" } as const, NOW, 0, undefined],
    ["a note of this clock, naming the token", note(NOW - 5_000, "at-1"), NOW, 0, { atMillis: NOW - 5_000, issuedIt: true }],
    ["a note naming another token", note(NOW - 5_000, "at-9"), NOW, 0, { atMillis: NOW - 5_000, issuedIt: false }],
    ["an older release's note", note(NOW - 5_000), NOW, 0, { atMillis: NOW - 5_000, issuedIt: undefined }],
    ["a writer 5 min ahead: counted from first sight", note(NOW + 300_000, "at-1"), NOW - 20_000, 0, { atMillis: NOW - 20_000, issuedIt: true }],
    ["the far future: counted from first sight, never later than now", note(NOW * 10, "at-1"), NOW + 1, 0, { atMillis: NOW, issuedIt: true }],
    ["a writer 5 min behind, stamped by the file system now", note(NOW - 300_000, "at-1"), NOW, NOW - 2_000, { atMillis: NOW - 2_000, issuedIt: true }],
    ["an mtime ahead of the reader: counted from first sight", note(NOW - 300_000, "at-1"), NOW - 1_000, NOW + 60_000, { atMillis: NOW - 1_000, issuedIt: true }],
    ["unreadable (a folder, a link, damaged): a forced refresh just seen", { _tag: "Unreadable", why: "a folder" } as const, NOW - 3_000, 0, { atMillis: NOW - 3_000, issuedIt: undefined }]
  ] as const)("%s", (_, read, firstSeen, mtime, expected) => {
    expect(forcedRefreshSeen(read, "at-1", NOW, firstSeen, mtime)).toEqual(expected)
  })
})
