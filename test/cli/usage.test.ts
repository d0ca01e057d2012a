/**
 * `kimi-auth usage [--json]` as a real child process against a loopback
 * server that answers `/usages` in Kimi's shape, with a login on disk.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

let home: string
let server: ScriptedServer | undefined
beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await server?.close()
  server = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const now = () => Math.floor(Date.now() / 1000)
const seed = () => {
  fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
  fs.writeFileSync(
    path.join(storage(), "oauth.json"),
    JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", token_type: "Bearer", expires_in: 900, scope: "kimi-code", expires_at: now() + 800 }),
    { mode: 0o600 }
  )
}

const inHours = (h: number) => new Date(Date.now() + h * 3_600_000 + 30_000).toISOString()
const usages = () => ({
  usage: { limit: "100", used: "25", remaining: "75", resetTime: inHours(50) },
  limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "20", remaining: "0", resetTime: inHours(2) } }],
  parallel: { limit: "20" },
  user: { membership: { level: "LEVEL_INTERMEDIATE" } }
})

const start = async (reply: () => Reply) => {
  server = await startScriptedServer(reply)
  return isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, KIMI_CODE_BASE_URL: `${server.url}/coding/v1` })
}

describe("kimi-auth usage", () => {
  it("text: each window with a bar, used/limit, the local reset time and a countdown; nothing secret", async () => {
    seed()
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage"], env)
    expect(r.stderr).toBe("")
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(/^weekly {2}█{5}░{15} {2}25% {2}25\/100 {2}resets \d{4}-\d\d-\d\d \d\d:\d\d \(in 2 d 2 h\)$/)
    expect(lines[1]).toMatch(/^5-hour {2}█{20} 100% {2}20\/20 {3}resets \d{4}-\d\d-\d\d \d\d:\d\d \(in 2 h 00 min\) {2}used up$/)
    expect(lines[2]).toBe("membership LEVEL_INTERMEDIATE, 20 requests at once")
    expect(r.stdout).not.toMatch(/\x1b\[/)
    expect(server!.requests.map((q) => [q.path, q.headers["authorization"]])).toEqual([["/coding/v1/usages", "Bearer at-0"]])
  })

  it("--json: the same windows for scripts", async () => {
    seed()
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage", "--json"], env)
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.windows).toHaveLength(2)
    expect(out.windows[0]).toMatchObject({ label: "weekly", kind: "plan", limit: 100, used: 25, remaining: 75, used_percent: 25, exhausted: false })
    expect(out.windows[1]).toMatchObject({ label: "5-hour", kind: "rolling", duration_minutes: 300, used_percent: 100, exhausted: true })
    expect(out.windows[1].resets_in_seconds).toBeGreaterThan(7100)
    expect(out.windows[1].resets_in_seconds).toBeLessThanOrEqual(7230)
    expect(Date.parse(out.windows[0].resets_at)).toBeGreaterThan(Date.now())
    expect(out.parallel_limit).toBe(20)
  })

  it("not logged in: exit 7 and the login command, and no request", async () => {
    const env = await start(() => ({ status: 200, body: usages() }))
    const r = await runCli(["usage", "--json"], env)
    expect(r.code).toBe(7)
    expect(JSON.parse(r.stdout)).toMatchObject({ event: "error", error: "NotLoggedInError" })
    expect(server!.requests).toHaveLength(0)
  })

  it("an error status: exit 6 naming the status and the path", async () => {
    seed()
    const env = await start(() => ({ status: 502, body: "<html>bad gateway</html>" }))
    const r = await runCli(["usage"], env)
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/answered 502 to \/usages/)
  })
})
