/**
 * A valid token file as other tools write it: a UTF-8 byte order mark
 * (Notepad, Windows PowerShell's `Set-Content -Encoding utf8`), UTF-16 with
 * its mark (PowerShell 5's `>` and `Out-File`), UTF-16 without one, UTF-32,
 * CRLF line ends, a final newline, NUL padding. Each loads as the login it
 * holds, through the store and through the CLI's fast path, and the file is
 * neither moved aside nor rewritten. Before: `JSON.parse` refused the mark, so
 * the login was judged "not valid JSON", moved aside as corrupt, and the user
 * was told to log in again (hunt case 5).
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { KimiAuthConfig } from "../../src/config/KimiAuthConfig.js"
import { decodeFileText } from "../../src/light/SmallFile.js"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { encodeTokenFile } from "../../src/tokens/TokenSet.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp, runCli } from "../support/cli.js"
import { tokenSet } from "../support/tokens.js"

const DEVICE = "2b7e1516-28ae-4d2a-a6d2-8f1e2f3a4b5c"
/** The login `at-7` / `rt-7` as the store writes it, indented as an editor shows it, with `eol` line ends. */
const text = (eol = "\n") =>
  JSON.stringify(JSON.parse(encodeTokenFile(tokenSet(7, Math.floor(Date.now() / 1000) + 800), DEVICE)), null, 2)
    .replace(/\n/g, eol)

const utf16be = (s: string) => Buffer.from(s, "utf16le").swap16()
const utf32 = (s: string, le: boolean) => {
  const cps = [...s].map((c) => c.codePointAt(0)!)
  const b = Buffer.alloc(cps.length * 4)
  cps.forEach((cp, i) => (le ? b.writeUInt32LE(cp, i * 4) : b.writeUInt32BE(cp, i * 4)))
  return b
}

/** How other tools write the same login. */
const encodings: ReadonlyArray<readonly [string, () => Buffer]> = [
  ["UTF-8 with a byte order mark", () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text())])],
  ["UTF-16LE with a byte order mark", () => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text("\r\n") + "\r\n", "utf16le")])],
  ["UTF-16BE with a byte order mark", () => Buffer.concat([Buffer.from([0xfe, 0xff]), utf16be(text())])],
  ["UTF-16LE without a byte order mark", () => Buffer.from(text(), "utf16le")],
  ["UTF-32LE with a byte order mark", () => Buffer.concat([Buffer.from([0xff, 0xfe, 0, 0]), utf32(text(), true)])],
  ["UTF-32BE with a byte order mark", () => Buffer.concat([Buffer.from([0, 0, 0xfe, 0xff]), utf32(text(), false)])],
  ["CRLF line ends and a final CRLF", () => Buffer.from(text("\r\n") + "\r\n")],
  ["NUL padding after the JSON", () => Buffer.concat([Buffer.from(text() + "\n"), Buffer.alloc(512)])],
  ["a BOM, CRLF and trailing blanks and NULs", () =>
    Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text("\r\n") + "\r\n \t\u0000\u0000")])]
]

const temps: Array<string> = []
afterEach(() => {
  for (const t of temps.splice(0)) rmTemp(t)
})
beforeAll(() => {
  if (!fs.existsSync(cliPath)) execFileSync("npm", ["run", "build"], { cwd: repoRoot, stdio: "ignore" })
})

const home = () => {
  const h = makeTemp("kimi-encodings-")
  temps.push(h)
  const dir = path.join(h, ".opencode-kimi-auth")
  fs.mkdirSync(dir, { mode: 0o700 })
  fs.writeFileSync(path.join(dir, "device_id"), `${DEVICE}\n`, { mode: 0o600 })
  return { home: h, dir, file: path.join(dir, "oauth.json") }
}

const load = (storageDir: string) =>
  Effect.runPromise(
    Effect.flatMap(TokenStore, (s) => s.load).pipe(
      Effect.provide(
        TokenStore.layerFile.pipe(
          Layer.provideMerge(DeviceIdentity.layerFixed(DEVICE)),
          Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
          Layer.provideMerge(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
        )
      )
    )
  )

describe("decodeFileText", () => {
  it.each(encodings)("%s: the JSON text itself", (_, bytes) => {
    expect(JSON.parse(decodeFileText(bytes())).refresh_token).toBe("rt-7")
  })

  it.each([
    ["plain UTF-8", Buffer.from("{\"a\":1}\n"), "{\"a\":1}"],
    ["empty", Buffer.alloc(0), ""],
    ["only NULs", Buffer.alloc(16), ""],
    ["an odd-length UTF-16BE tail", Buffer.from([0xfe, 0xff, 0, 0x41, 0]), "A"],
    ["UTF-8 with a non-ASCII letter", Buffer.from("{\"n\":\"é\"}"), "{\"n\":\"é\"}"],
    ["damaged UTF-8 stays damaged", Buffer.from([0x7b, 0xff, 0x7d]), "{\ufffd}"]
  ] as const)("%s", (_, bytes, expected) => {
    expect(decodeFileText(bytes)).toBe(expected)
  })

  it("64 KiB of blanks before a last letter is decoded at once (no regex backtracking)", () => {
    const started = Date.now()
    expect(decodeFileText(Buffer.from(" ".repeat(64 * 1024) + "x"))).toHaveLength(64 * 1024 + 1)
    expect(Date.now() - started).toBeLessThan(1_000)
  })
})

describe("a token file as other tools write it", () => {
  it.each(encodings)("%s: the store loads the login, keeps the file as it is, moves nothing aside", async (_, bytes) => {
    const { dir, file } = home()
    fs.writeFileSync(file, bytes(), { mode: 0o600 })
    const before = fs.readFileSync(file)
    const loaded = await load(dir)
    expect(loaded && Redacted.value(loaded.refreshToken)).toBe("rt-7")
    expect(fs.readFileSync(file).equals(before)).toBe(true)
    expect(fs.readdirSync(dir).filter((n) => n.includes("corrupt"))).toEqual([])
  })

  it.each(encodings)("%s: `kimi-auth token` (the fast path) prints the access token; `status` says logged in", async (_, bytes) => {
    const { home: h, file } = home()
    fs.writeFileSync(file, bytes(), { mode: 0o600 })
    const before = fs.readFileSync(file)
    const token = await runCli(["token"], isolatedEnv(h), { timeoutMs: 20_000 })
    expect(token.code).toBe(0)
    expect(token.stdout.trim()).toBe("at-7")
    const status = await runCli(["status"], isolatedEnv(h), { timeoutMs: 20_000 })
    expect(status.code).toBe(0)
    expect(status.stdout).toContain("Logged in")
    expect(fs.readFileSync(file).equals(before)).toBe(true)
  }, 45_000)

  it("text that is not a token file in any encoding is still moved aside, kept intact, and reported", async () => {
    const { dir, file } = home()
    fs.writeFileSync(file, Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("{ \"access_token\": ")]), { mode: 0o600 })
    await expect(load(dir)).rejects.toThrow(/could not be read/)
    expect(fs.readdirSync(dir).filter((n) => n.includes("corrupt"))).toHaveLength(1)
  })
})
