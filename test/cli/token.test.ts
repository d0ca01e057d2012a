/**
 * `kimi-auth token | status | logout` as real child processes, including the
 * refresh race: 8 processes, one expired token on disk, a server that revokes
 * the family on refresh-token reuse.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type RotatingServer, startRotatingServer } from "../support/rotatingServer.js"
import { seedLogin } from "../support/tokens.js"

let home: string
let server: RotatingServer | undefined

beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await server?.close()
  server = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")

/** Writes a token file the way Kimi's own clients do (exactly their fields). */
const seed = (expiresAt: number, access = "at-0", refresh = "rt-0") => seedLogin(tokenFile(), { access, refresh, expiresAt })

const now = () => Math.floor(Date.now() / 1000)

describe("kimi-auth token", () => {
  it("8 processes at once with an expired token: exactly one refresh reaches the server, all print the same new token", async () => {
    server = await startRotatingServer("rt-0", { delayMs: 150 })
    seed(now() - 60)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url })
    const results = await Promise.all(Array.from({ length: 8 }, () => runCli(["token"], env, { timeoutMs: 45_000 })))
    for (const r of results) {
      expect(r.stderr).toBe("")
      expect(r.code).toBe(0)
    }
    expect(new Set(results.map((r) => r.stdout))).toEqual(new Set(["at-1\n"]))
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    expect(stored.refresh_token).toBe("rt-1")
    expect(stored.access_token).toBe("at-1")
    expect(fs.statSync(tokenFile()).mode & 0o777).toBe(0o600)
  })

  it("a valid token is printed without any request", async () => {
    server = await startRotatingServer()
    seed(now() + 800)
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(0)
    expect(r.stdout).toBe("at-0\n")
    expect(server.requests).toHaveLength(0)
  })

  it("a dead refresh token: exit 7, a message naming the login command, and the file is kept", async () => {
    server = await startRotatingServer("rt-other")
    seed(now() - 60)
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(7)
    expect(r.stdout).toBe("")
    expect(r.stderr).toMatch(/kimi-auth login/)
    expect(r.stderr).not.toContain("rt-0")
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-0")
  })

  it("a corrupt token file is moved aside, never overwritten: exit 7", async () => {
    server = await startRotatingServer()
    fs.mkdirSync(storage(), { recursive: true })
    fs.writeFileSync(tokenFile(), '{"access_token": "at-0", "refresh_tok')
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(7)
    expect(r.stderr).toMatch(/login/)
    const aside = fs.readdirSync(storage()).filter((f) => f.startsWith("oauth.json.corrupt-"))
    expect(aside).toHaveLength(1)
    expect(fs.readFileSync(path.join(storage(), aside[0]!), "utf8")).toBe('{"access_token": "at-0", "refresh_tok')
  })
})

describe("storage folder modes", () => {
  it("a token file kept directly in the home folder never makes us chmod the home folder", async () => {
    fs.chmodSync(home, 0o755)
    fs.writeFileSync(
      path.join(home, "oauth.json"),
      JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: now() + 800 }),
      { mode: 0o644 }
    )
    const r = await runCli(["token"], isolatedEnv(home, { OPENCODE_KIMI_AUTH_DIR: home }))
    expect(r.code).toBe(0)
    expect(fs.statSync(home).mode & 0o777).toBe(0o755)
    // the file itself is still tightened
    expect(fs.statSync(path.join(home, "oauth.json")).mode & 0o777).toBe(0o600)
  })
})

describe("kimi-auth status", () => {
  it("logged in: expiry, device id and file; never a secret", async () => {
    seed(now() + 600)
    const r = await runCli(["status"], isolatedEnv(home))
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/Logged in/)
    expect(r.stdout).toContain(tokenFile())
    expect(r.stdout).not.toMatch(/at-0|rt-0/)
    const json = await runCli(["status", "--json"], isolatedEnv(home))
    const s = JSON.parse(json.stdout)
    expect(s).toMatchObject({ logged_in: true, token_file: tokenFile(), access_token_expired: false })
    // No device id stored yet, and reading the status does not create one (issue 9).
    expect(s.device_id).toBe("")
    expect(fs.existsSync(path.join(storage(), "device_id"))).toBe(false)
    expect(json.stdout).not.toMatch(/at-0|rt-0/)
  })

  it("not logged in: exit 7 and what to run", async () => {
    const r = await runCli(["status"], isolatedEnv(home))
    expect(r.code).toBe(7)
    expect(r.stdout).toMatch(/kimi-auth login/)
  })
})

describe("kimi-auth logout", () => {
  it("removes the tokens and keeps the device id", async () => {
    seed(now() + 600)
    fs.writeFileSync(path.join(storage(), "device_id"), "00000000-0000-4000-8000-0000000000cc\n", { mode: 0o600 })
    const id = fs.readFileSync(path.join(storage(), "device_id"), "utf8")
    const r = await runCli(["logout"], isolatedEnv(home))
    expect(r.code).toBe(0)
    expect(fs.existsSync(tokenFile())).toBe(false)
    expect(fs.readFileSync(path.join(storage(), "device_id"), "utf8")).toBe(id)
    const again = await runCli(["logout"], isolatedEnv(home))
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/nothing to remove/)
  })
})
