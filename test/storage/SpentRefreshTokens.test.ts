/**
 * The list of spent refresh tokens beside the token file (`oauth.json.spent`,
 * src/storage/SpentRefreshTokens.ts): real files in a temporary folder. What
 * is written (fingerprints only, 0600, bounded), what a read finds at odd
 * files (a folder, a FIFO, a symbolic link, a huge or damaged file: none
 * followed, none blocking, each "unknown"), and that a refresh through the
 * token manager lists the refresh token it rotated away, and only that one.
 */
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { layerNode } from "../../src/KimiAuth.js"
import {
  fingerprint,
  isSpent,
  MAX_SPENT_FINGERPRINTS,
  readSpentNote,
  recordSpent,
  recordSpentSync,
  SPENT_NOTE_LIMIT_BYTES,
  spentNotePath,
  spentVerdict,
  withSpent
} from "../../src/storage/SpentRefreshTokens.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import { spentByRefresh } from "../../src/tokens/TokenManagerDecisions.js"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { startRotatingServer } from "../support/rotatingServer.js"

let dir: string
let file: string
beforeEach(() => {
  dir = makeTemp("kimi-spent-")
  file = path.join(dir, "oauth.json")
})
afterEach(() => rmTemp(dir))

const posix = process.platform !== "win32"

describe("the spent list: what is written", () => {
  it("lists fingerprints, never the tokens, in a 0600 file; a token listed twice is listed once, newest last", () => {
    recordSpentSync(file, "rt-secret-0")
    recordSpentSync(file, "rt-secret-1")
    recordSpentSync(file, "rt-secret-0")
    const text = fs.readFileSync(spentNotePath(file), "utf8")
    expect(text).not.toContain("rt-secret")
    expect(readSpentNote(file)).toEqual({ _tag: "Read", fingerprints: [fingerprint("rt-secret-1"), fingerprint("rt-secret-0")] })
    if (posix) expect(fs.statSync(spentNotePath(file)).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(dir)).toEqual(["oauth.json.spent"])
  })

  it(`is bounded: the newest ${MAX_SPENT_FINGERPRINTS} are kept, and the file stays far below the read cap`, () => {
    for (let i = 0; i < MAX_SPENT_FINGERPRINTS + 40; i++) recordSpentSync(file, `rt-${i}`)
    const read = readSpentNote(file)
    expect(read._tag).toBe("Read")
    if (read._tag !== "Read") return
    expect(read.fingerprints).toHaveLength(MAX_SPENT_FINGERPRINTS)
    expect(read.fingerprints.at(-1)).toBe(fingerprint(`rt-${MAX_SPENT_FINGERPRINTS + 39}`))
    expect(isSpent(file, ["rt-0"])).toBe("unspent")
    expect(isSpent(file, ["rt-40"])).toBe("spent")
    expect(fs.statSync(spentNotePath(file)).size).toBeLessThan(SPENT_NOTE_LIMIT_BYTES / 2)
  })

  it("withSpent moves a listed one last and drops the oldest past the bound (table)", () => {
    const cases: Array<[Array<string>, string, Array<string>]> = [
      [[], "a", ["a"]],
      [["a", "b"], "c", ["a", "b", "c"]],
      [["a", "b"], "a", ["b", "a"]]
    ]
    for (const [before, added, want] of cases) expect(withSpent(before, added)).toEqual(want)
    const full = Array.from({ length: MAX_SPENT_FINGERPRINTS }, (_, i) => `f${i}`)
    expect(withSpent(full, "new")).toEqual([...full.slice(1), "new"])
  })

  it("an empty refresh token is never listed", () => {
    recordSpentSync(file, "")
    expect(fs.existsSync(spentNotePath(file))).toBe(false)
  })
})

describe("the spent list: verdicts (table)", () => {
  const listed = { _tag: "Read", fingerprints: [fingerprint("rt-old")] } as const
  const cases: Array<[string, Parameters<typeof spentVerdict>[0], Array<string>, string]> = [
    ["no list", { _tag: "Absent" }, ["rt-old"], "unspent"],
    ["listed", listed, ["rt-old"], "spent"],
    ["not listed", listed, ["rt-new"], "unspent"],
    ["an empty token is never listed", { _tag: "Read", fingerprints: [fingerprint("")] }, [""], "unspent"],
    ["an unreadable list fails closed", { _tag: "Unreadable", what: "a folder" }, ["rt-new"], "unknown"]
  ]
  for (const [name, read, secrets, want] of cases) it(`${name}: ${want}`, () => expect(spentVerdict(read, secrets)).toBe(want))
})

describe("the spent list: odd files at its path, none followed, none blocking", () => {
  it("a folder holding a file: unknown; recording fails (the Effect logs, never fails) and the folder stays", async () => {
    fs.mkdirSync(spentNotePath(file))
    fs.writeFileSync(path.join(spentNotePath(file), "keep"), "someone's file")
    expect(readSpentNote(file)).toEqual({ _tag: "Unreadable", what: "a folder" })
    expect(isSpent(file, ["rt-0"])).toBe("unknown")
    expect(() => recordSpentSync(file, "rt-0")).toThrow()
    await Effect.runPromise(recordSpent(file, Redacted.make("rt-0")))
    expect(fs.statSync(spentNotePath(file)).isDirectory()).toBe(true)
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp"))).toEqual([])
  })

  it.skipIf(!posix)("a FIFO: read at once as unknown (no writer needed); recording replaces it without opening it", () => {
    execFileSync("mkfifo", [spentNotePath(file)])
    const started = Date.now()
    expect(readSpentNote(file)).toEqual({ _tag: "Unreadable", what: "a named pipe (FIFO)" })
    recordSpentSync(file, "rt-0")
    expect(Date.now() - started).toBeLessThan(2000)
    expect(fs.lstatSync(spentNotePath(file)).isFile()).toBe(true)
    expect(isSpent(file, ["rt-0"])).toBe("spent")
  })

  it.skipIf(!posix)("a symbolic link to a list that names the token is not followed: unknown, not spent; recording replaces the link", () => {
    const elsewhere = path.join(dir, "elsewhere.json")
    recordSpentSync(path.join(dir, "elsewhere"), "rt-0")
    fs.renameSync(spentNotePath(path.join(dir, "elsewhere")), elsewhere)
    const before = fs.readFileSync(elsewhere, "utf8")
    fs.symlinkSync(elsewhere, spentNotePath(file))
    expect(readSpentNote(file)).toEqual({ _tag: "Unreadable", what: "a symbolic link" })
    expect(isSpent(file, ["rt-0"])).toBe("unknown")
    recordSpentSync(file, "rt-1")
    expect(fs.lstatSync(spentNotePath(file)).isSymbolicLink()).toBe(false)
    expect(fs.readFileSync(elsewhere, "utf8")).toBe(before)
    expect(isSpent(file, ["rt-1"])).toBe("spent")
  })

  it.skipIf(!posix)("a dangling symbolic link: unknown, never created through", () => {
    const target = path.join(dir, "target")
    fs.symlinkSync(target, spentNotePath(file))
    expect(isSpent(file, ["rt-0"])).toBe("unknown")
    recordSpentSync(file, "rt-0")
    expect(fs.existsSync(target)).toBe(false)
  })

  it("a huge file is not loaded; a damaged one is unknown; either is replaced by the next record", () => {
    fs.writeFileSync(spentNotePath(file), "")
    fs.truncateSync(spentNotePath(file), 1024 ** 3)
    expect(readSpentNote(file)._tag).toBe("Unreadable")
    fs.writeFileSync(spentNotePath(file), JSON.stringify({ fingerprints: ["not-hex"] }))
    expect(readSpentNote(file)).toEqual({ _tag: "Unreadable", what: "not a list of fingerprints (damaged)" })
    recordSpentSync(file, "rt-0")
    expect(readSpentNote(file)).toEqual({ _tag: "Read", fingerprints: [fingerprint("rt-0")] })
  })
})

describe("a refresh lists the refresh token it rotated away", () => {
  const tokens = (refresh: string) =>
    new TokenSet({ accessToken: Redacted.make("at"), refreshToken: Redacted.make(refresh), tokenType: "Bearer", expiresIn: 900, scope: "", expiresAt: 0 })
  it("spentByRefresh (table): rotated → the sent one; same refresh token, refused or unreachable → none", () => {
    const sent = Redacted.make("rt-sent")
    const cases: Array<[string, Parameters<typeof spentByRefresh>[1], string | undefined]> = [
      ["rotated", Result.succeed(tokens("rt-new")), "rt-sent"],
      ["kept", Result.succeed(tokens("rt-sent")), undefined],
      ["refused", Result.fail({ _tag: "InvalidGrantError" }), undefined],
      ["unusable answer that rotated", Result.fail({ _tag: "InvalidResponseError", rotatedRefreshToken: Redacted.make("rt-new") }), "rt-sent"],
      ["unusable answer without a new one", Result.fail({ _tag: "InvalidResponseError", rotatedRefreshToken: undefined }), undefined],
      ["unreachable", Result.fail({ _tag: "NetworkError" }), undefined]
    ]
    for (const [, result, want] of cases) {
      const got = spentByRefresh(sent, result)
      expect(got === undefined ? undefined : Redacted.value(got)).toBe(want)
    }
  })

  it("through the token manager and the file store, against a rotating server", async () => {
    const server = await startRotatingServer("rt-0")
    try {
      fs.writeFileSync(file, JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: 1 }), { mode: 0o600 })
      const layer = layerNode({ storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` })
      await Effect.runPromise(Effect.flatMap(TokenManager, (m) => m.getTokens).pipe(Effect.provide(layer)))
      expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
      expect(isSpent(file, ["rt-0"])).toBe("spent")
      expect(isSpent(file, ["rt-1"])).toBe("unspent")
    } finally {
      await server.close()
    }
  }, 30_000)
})
