/**
 * `kimi-auth` as a real child process against a hostile OAuth server and
 * hostile values on disk: the process must end with a message and an exit
 * code (never a V8 abort, never a stack), with its peak memory bounded,
 * and the login kept whenever the server left it alive.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, repoRoot, rmTemp, runCli } from "../support/cli.js"
import { type Hostile, type HostileServer, startHostileServer } from "../support/hostileServer.js"
import { preloadEnv } from "../support/runtime.js"
import { seedLogin } from "../support/tokens.js"

let home: string
let servers: Array<HostileServer> = []

beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()))
  servers = []
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const now = () => Math.floor(Date.now() / 1000)
const seed = (fields: { readonly expires_at: number }) => seedLogin(tokenFile(), { expiresAt: fields.expires_at })
const serve = async (mode: Hostile) => {
  const s = await startHostileServer(mode)
  servers.push(s)
  return s
}
const STACK = /^\s+at .+:\d+:\d+\)?$/m

/** Runs the CLI with its peak RSS (KiB) reported by a preload. */
const runMeasured = async (args: ReadonlyArray<string>, extra: Record<string, string>) => {
  const report = path.join(home, `rss-${Math.random().toString(36).slice(2)}`)
  const started = Date.now()
  const r = await runCli(args, isolatedEnv(home, {
    ...extra,
    KIMI_RSS_REPORT: report,
    ...preloadEnv(path.join(repoRoot, "test", "fixtures", "report-rss.cjs"))
  }), { timeoutMs: 60_000 })
  const maxRssKiB = fs.existsSync(report) ? Number(fs.readFileSync(report, "utf8")) : Number.NaN
  return { ...r, maxRssKiB, millis: Date.now() - started }
}

describe("kimi-auth token against a hostile OAuth server", () => {
  for (const kind of ["huge-length", "endless"] as const) {
    it(`${kind}: exit 6 with a "too large" message, peak memory under 200 MiB, the login kept`, async () => {
      const server = await serve({ kind })
      seed({ expires_at: now() - 60 })
      const before = fs.readFileSync(tokenFile(), "utf8")
      const r = await runMeasured(["token"], { KIMI_OAUTH_HOST: server.url })
      expect(r.signal).toBeNull()
      expect(r.code).toBe(6)
      expect(r.stdout).toBe("")
      expect(r.stderr).toMatch(/too large for an OAuth response/)
      expect(r.stderr).not.toMatch(STACK)
      expect(r.maxRssKiB).toBeLessThan(200 * 1024)
      expect(fs.readFileSync(tokenFile(), "utf8")).toBe(before)
    })
  }

  it("a 302 to another origin: exit 6, refused, the other origin never asked", async () => {
    const other = await serve({ kind: "json", body: { access_token: "at-stolen", refresh_token: "rt-stolen", expires_in: 900 } })
    const server = await serve({ kind: "redirect", location: `${other.url}/api/oauth/token` })
    seed({ expires_at: now() - 60 })
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/redirect to http:\/\/127\.0\.0\.1:\d+, which was refused/)
    expect(other.requests).toHaveLength(0)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-0")
  })

  it("a CR/LF access token is never printed or stored; the rotated refresh token is kept, the still-valid token served", async () => {
    const server = await serve({ kind: "json", body: { access_token: "at-x\r\nX-Injected: yes", refresh_token: "rt-1", expires_in: 900 } })
    seed({ expires_at: now() + 100 }) // due (inside the window) but still valid
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(0)
    expect(r.stdout).toBe("at-0\n")
    expect(r.stdout + r.stderr).not.toMatch(/X-Injected/)
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    expect(stored.refresh_token).toBe("rt-1")
    expect(stored.access_token).toBe("at-0")
  })

  it("the same with an expired token: exit 6, nothing printed on stdout, the rotated refresh token still stored", async () => {
    const server = await serve({ kind: "json", body: { access_token: "at-x\r\nX-Injected: yes", refresh_token: "rt-1", expires_in: 900 } })
    seed({ expires_at: now() - 60 })
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(6)
    expect(r.stdout).toBe("")
    expect(r.stderr).not.toMatch(/X-Injected/)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
  })

  it("expires_in 1e308 from the server is stored as a sane lifetime; status and token --debug work afterwards", async () => {
    const server = await serve({ kind: "json", body: { access_token: "at-1", refresh_token: "rt-1", expires_in: 1e308 } })
    seed({ expires_at: now() - 60 })
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url })
    const r = await runCli(["token"], env)
    expect(r.code).toBe(0)
    expect(r.stdout).toBe("at-1\n")
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    expect(stored.expires_in).toBe(900)
    expect(stored.expires_at).toBeLessThan(now() + 1000)
    for (const args of [["status"], ["status", "--json"], ["token", "--debug"]]) {
      const s = await runCli(args, env)
      expect(s.code, args.join(" ")).toBe(0)
      expect(s.stderr).not.toMatch(STACK)
    }
  })
})

describe("every command prints a message, never a stack, for any value on disk", () => {
  const values: ReadonlyArray<[string, string]> = [
    ["expires_at 1e308", JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: 1e308 })],
    ["expires_in 1e308", JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 1e308, expires_at: now() + 600 })],
    ["negative expires_at", JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: -1, expires_at: -1e300 })],
    ["expires_at as a string", JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_at: "soon" })],
    ["a CR/LF token", JSON.stringify({ access_token: "at-0\r\nX-Injected: yes", refresh_token: "rt-0", expires_at: now() + 600 })],
    ["an array", "[1,2,3]"],
    ["binary", "\u0000\u0001\u00ff"]
  ]
  for (const [name, text] of values) {
    it(name, async () => {
      fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
      // A server that is never reached answers nothing useful: a refresh attempt fails fast.
      const env = isolatedEnv(home, { KIMI_OAUTH_HOST: "http://127.0.0.1:9" })
      for (const args of [["status"], ["status", "--json"], ["token", "--debug"], ["token"]]) {
        fs.writeFileSync(tokenFile(), text, { mode: 0o600 })
        const r = await runCli(args, env)
        expect(r.signal, `${args.join(" ")}`).toBeNull()
        expect([0, 5, 6, 7], `${args.join(" ")}: ${r.stderr}`).toContain(r.code)
        expect(r.stderr, args.join(" ")).not.toMatch(STACK)
        expect(r.stderr + r.stdout, args.join(" ")).not.toMatch(/RangeError|TypeError|X-Injected/)
      }
    })
  }
})

describe("a defect (a bug) in a command", () => {
  it("prints one line naming its kind, exits 1, and shows neither a stack nor the defect's message", async () => {
    seed({ expires_at: now() + 3600 })
    const preload = preloadEnv(path.join(repoRoot, "test", "fixtures", "defect-in-date.cjs"))
    for (const args of [["status"], ["status", "--json"]]) {
      const r = await runCli(args, isolatedEnv(home, { KIMI_OAUTH_HOST: "http://127.0.0.1:9", ...preload }))
      expect(r.code, args.join(" ")).toBe(1)
      expect(r.stderr + r.stdout).toMatch(/unexpected internal error \(TypeError\)/)
      expect(r.stderr + r.stdout).not.toMatch(/at-defect-secret|^\s+at /m)
      if (args.includes("--json")) expect(JSON.parse(r.stdout.trim().split("\n").pop()!)).toMatchObject({ event: "error", exit_code: 1 })
      else expect(r.stderr.trim().split("\n")).toHaveLength(1)
    }
  })
})
