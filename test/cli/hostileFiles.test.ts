/**
 * A token file or device id file that is huge, not a file, or damaged: the
 * built CLI in a real child process, real files (a 1 GiB sparse file, a FIFO,
 * a folder). Before the fix a FIFO as `device_id` hung `kimi-auth status`
 * forever (SIGTERM unheard: the read blocked the main thread), a 1 GiB
 * `oauth.json` took 1.1 GB of memory and said "check that it is a file you
 * own", and a damaged `device_id` gave every process a new id.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { describeKind, readSmallFileSync } from "../../src/light/SmallFile.js"
import { deviceIdFromTokenFile, readStoredDeviceId } from "../../src/oauth/DeviceIdentity.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { startScriptedServer } from "../support/scriptedServer.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp, runCli } from "../support/cli.js"
import { preloadEnv } from "../support/runtime.js"
import { seedText } from "../support/tokens.js"

const DEVICE = "2b7e1516-28ae-4d2a-a6d2-8f1e2f3a4b5c"
const tokenFile = (expiresAt: number, deviceId = DEVICE) =>
  seedText({ access: "at-file", refresh: "rt-file", expiresAt, extra: { version: 1, device_id: deviceId } }) + "\n"

const temps: Array<string> = []
const home = () => {
  const h = makeTemp("kimi-hostile-files-")
  temps.push(h)
  const dir = path.join(h, ".opencode-kimi-auth")
  fs.mkdirSync(dir, { mode: 0o700 })
  return { home: h, dir }
}
afterEach(() => {
  for (const t of temps.splice(0)) rmTemp(t)
})

beforeAll(() => {
  if (!fs.existsSync(cliPath)) execFileSync("npm", ["run", "build"], { cwd: repoRoot, stdio: "ignore" })
})

const mkfifo = (p: string) => execFileSync("mkfifo", ["-m", "600", p])
const sparse = (p: string, bytes: number) => {
  const fd = fs.openSync(p, "w", 0o600)
  fs.ftruncateSync(fd, bytes)
  fs.closeSync(fd)
}
const posix = process.platform !== "win32"

describe("readSmallFileSync", () => {
  it.runIf(posix)("reports a 1 GiB sparse file by its size without reading it", () => {
    const { dir } = home()
    const p = path.join(dir, "big")
    sparse(p, 1024 ** 3)
    const before = process.memoryUsage().rss
    const found = readSmallFileSync(p, 64 * 1024)
    expect(found).toEqual({ _tag: "TooLarge", bytes: 1024 ** 3, limitBytes: 64 * 1024 })
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024)
  })

  it.runIf(posix)("never blocks on a FIFO, and names a folder or a device", () => {
    const { dir } = home()
    mkfifo(path.join(dir, "pipe"))
    expect(readSmallFileSync(path.join(dir, "pipe"), 1024)).toEqual({ _tag: "NotAFile", kind: "a named pipe (FIFO)" })
    expect(readSmallFileSync(dir, 1024)).toEqual({ _tag: "NotAFile", kind: "a folder" })
    expect(readSmallFileSync("/dev/zero", 1024)).toEqual({ _tag: "NotAFile", kind: "a device" })
    expect(describeKind(fs.lstatSync(dir))).toBe("a folder")
  })

  it("reads a small file, and tells a missing one", () => {
    const { dir } = home()
    fs.writeFileSync(path.join(dir, "f"), "hello")
    expect(readSmallFileSync(path.join(dir, "f"), 5)).toEqual({ _tag: "Text", text: "hello" })
    expect(readSmallFileSync(path.join(dir, "f"), 4)).toMatchObject({ _tag: "TooLarge", bytes: 5 })
    expect(readSmallFileSync(path.join(dir, "none"), 4)).toEqual({ _tag: "Missing" })
  })
})

describe("the device id file", () => {
  it("a damaged one is damaged, not missing; the token file's copy is found", () => {
    const { dir } = home()
    fs.writeFileSync(path.join(dir, "device_id"), "not-a-uuid\n")
    expect(readStoredDeviceId(path.join(dir, "device_id"))).toEqual({ _tag: "Damaged" })
    fs.writeFileSync(path.join(dir, "device_id"), `\uFEFF${DEVICE}\r\n`)
    expect(readStoredDeviceId(path.join(dir, "device_id"))).toEqual({ _tag: "Id", id: DEVICE })
    fs.writeFileSync(path.join(dir, "oauth.json"), tokenFile(2_000_000_000))
    expect(deviceIdFromTokenFile(path.join(dir, "oauth.json"))).toBe(DEVICE)
    expect(deviceIdFromTokenFile(path.join(dir, "none.json"))).toBeUndefined()
  })

  it.runIf(posix)("a FIFO in its place: `status` ends at once with exit 8 and says to move it away (it hung forever)", async () => {
    const { home: h, dir } = home()
    mkfifo(path.join(dir, "device_id"))
    const started = Date.now()
    const r = await runCli(["status"], isolatedEnv(h), { timeoutMs: 15_000 })
    expect(r.code).toBe(8)
    expect(r.stderr).toContain("is a named pipe (FIFO), not a regular file")
    expect(r.stderr).toContain(`mv ${path.join(dir, "device_id")}`)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it.runIf(posix)("a folder in its place: exit 8 naming it, not \"check the folder's permissions\"", async () => {
    const { home: h, dir } = home()
    fs.mkdirSync(path.join(dir, "device_id"), { mode: 0o700 })
    const r = await runCli(["status"], isolatedEnv(h), { timeoutMs: 15_000 })
    expect(r.code).toBe(8)
    expect(r.stderr).toContain("is a folder, not a regular file")
  })
})

describe("the token file", () => {
  it.runIf(posix)("1 GiB sparse: `token` moves it aside unread and exits 7 with a login hint, in little memory", async () => {
    const { home: h, dir } = home()
    const file = path.join(dir, "oauth.json")
    sparse(file, 1024 ** 3)
    fs.writeFileSync(path.join(dir, "device_id"), `${DEVICE}\n`, { mode: 0o600 })
    const rss = path.join(h, "rss")
    const r = await runCli(["token"], isolatedEnv(h, {
      KIMI_RSS_REPORT: rss,
      ...preloadEnv(path.join(repoRoot, "test", "fixtures", "report-rss.cjs"))
    }), { timeoutMs: 30_000 })
    expect(r.code).toBe(7)
    expect(r.stderr).toContain("larger than any token file")
    expect(r.stderr).toContain("kimi-auth login")
    expect(r.stdout).toBe("")
    expect(fs.existsSync(file)).toBe(false)
    const aside = fs.readdirSync(dir).filter((n) => n.startsWith("oauth.json.corrupt-"))
    expect(aside).toHaveLength(1)
    expect(fs.statSync(path.join(dir, aside[0]!)).size).toBe(1024 ** 3)
    // Peak RSS of the whole CLI (KiB); the old read took 1.1 GB.
    expect(Number(fs.readFileSync(rss, "utf8"))).toBeLessThan(300 * 1024)
  })

  it.runIf(posix)("a FIFO in its place: `token` refuses it at once (exit 8), never blocks", async () => {
    const { home: h, dir } = home()
    mkfifo(path.join(dir, "oauth.json"))
    fs.writeFileSync(path.join(dir, "device_id"), `${DEVICE}\n`, { mode: 0o600 })
    const r = await runCli(["token"], isolatedEnv(h), { timeoutMs: 15_000 })
    expect(r.code).toBe(8)
    expect(r.stderr).toContain("not a regular file")
  })

  it.runIf(posix)("a FIFO at the lock path: `token` never hangs on it; it is taken over like a dead holder's lock and the refresh goes on", async () => {
    const { home: h, dir } = home()
    fs.writeFileSync(path.join(dir, "oauth.json"), tokenFile(Math.floor(Date.now() / 1000) - 10), { mode: 0o600 })
    fs.writeFileSync(path.join(dir, "device_id"), `${DEVICE}\n`, { mode: 0o600 })
    mkfifo(path.join(dir, "oauth.json.lock"))
    const server = await startScriptedServer(() => ({
      status: 200,
      body: { access_token: "at-new", refresh_token: "rt-new", expires_in: 900, token_type: "Bearer" }
    }))
    try {
      // Before: the blocking open of the FIFO hung every waiter for good (killed after 90 s).
      const r = await runCli(["token"], isolatedEnv(h, { KIMI_OAUTH_HOST: server.url }), { timeoutMs: 45_000 })
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
      expect(r.stdout.trim()).toBe("at-new")
      expect(fs.existsSync(path.join(dir, "oauth.json.lock"))).toBe(false)
    } finally {
      await server.close()
    }
  }, 60_000)

  it("a damaged device_id beside a token file: the refresh carries the token file's device id, and the file is repaired", async () => {
    const { dir } = home()
    fs.writeFileSync(path.join(dir, "oauth.json"), tokenFile(Math.floor(Date.now() / 1000) - 10), { mode: 0o600 })
    fs.writeFileSync(path.join(dir, "device_id"), "garbage, not an id\n", { mode: 0o600 })
    const server = await startScriptedServer(() => ({
      status: 200,
      body: { access_token: "at-new", refresh_token: "rt-new", expires_in: 900, token_type: "Bearer" }
    }))
    const client = new KimiOAuthClient({ oauthHost: server.url, storageDir: dir })
    try {
      expect(await client.getValidAccessToken()).toBe("at-new")
      expect(server.requests.map((r) => r.headers["x-msh-device-id"])).toEqual([DEVICE])
      expect(fs.readFileSync(path.join(dir, "device_id"), "utf8").trim()).toBe(DEVICE)
      expect(JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8")).device_id).toBe(DEVICE)
    } finally {
      await client.dispose()
      await server.close()
    }
  })
})
