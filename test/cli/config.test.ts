/**
 * Configuration is checked before any I/O, by every command: a credential in
 * the OAuth host URL, a relative storage folder and a plain-http host off
 * loopback exit 2 with a message that never echoes the credential, without
 * reading or writing the storage folder and without a request.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type HostileServer, startHostileServer } from "../support/hostileServer.js"

let home: string
let server: HostileServer

beforeEach(async () => {
  home = makeTemp()
  server = await startHostileServer({ kind: "json", body: { access_token: "at-1", refresh_token: "rt-1", expires_in: 900 } })
})
afterEach(async () => {
  await server.close()
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const seedExpired = () => {
  fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
  fs.writeFileSync(
    tokenFile(),
    JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: Math.floor(Date.now() / 1000) - 60 }),
    { mode: 0o600 }
  )
}

const COMMANDS: ReadonlyArray<ReadonlyArray<string>> = [
  ["token"],
  ["token", "--debug"],
  ["status"],
  ["status", "--json"],
  ["logout"],
  ["login", "--no-browser"],
  ["login", "--no-browser", "--json"]
]

describe("bad configuration: exit 2 before any I/O, the credential never echoed", () => {
  const cases: ReadonlyArray<[string, () => Record<string, string>, RegExp]> = [
    ["KIMI_OAUTH_HOST with user:password@", () => ({ KIMI_OAUTH_HOST: server.url.replace("http://", "http://user:hunter2@") }), /user name or password/],
    ["KIMI_CODE_OAUTH_HOST with a password only", () => ({ KIMI_CODE_OAUTH_HOST: server.url.replace("http://", "http://:hunter2@") }), /user name or password/],
    ["a relative OPENCODE_KIMI_AUTH_DIR", () => ({ OPENCODE_KIMI_AUTH_DIR: "relative-kimi-dir" }), /relative path/],
    ["plain http off loopback", () => ({ KIMI_OAUTH_HOST: "http://example.com" }), /plain http/]
  ]
  for (const [name, env, pattern] of cases) {
    it(name, async () => {
      seedExpired()
      const before = fs.readFileSync(tokenFile(), "utf8")
      const listing = () => fs.readdirSync(storage()).sort()
      const files = listing()
      for (const args of COMMANDS) {
        const r = await runCli(args, { ...isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, ...env() }), PWD: home }, { timeoutMs: 20_000 })
        const label = `${args.join(" ")}: ${r.stderr}${r.stdout}`
        expect(r.code, label).toBe(2)
        expect(r.stdout + r.stderr, label).not.toMatch(/hunter2/)
        expect(r.stdout + r.stderr, label).toMatch(pattern)
        expect(r.stdout, label).not.toMatch(/at-0|at-1/)
        if (args.includes("--json")) {
          const event = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}")
          expect(event).toMatchObject({ event: "error", error: "ConfigError", exit_code: 2 })
        }
      }
      // Nothing was read into a refresh, written, created or removed; the server never heard of us.
      expect(server.requests).toHaveLength(0)
      expect(fs.readFileSync(tokenFile(), "utf8")).toBe(before)
      expect(listing()).toEqual(files)
      expect(fs.existsSync(path.join(process.cwd(), "relative-kimi-dir"))).toBe(false)
    })
  }
})
