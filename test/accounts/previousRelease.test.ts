/**
 * Upgrade safety: the previous release (a build from before accounts, given
 * as `KIMI_AUTH_PREVIOUS_CLI=<its dist/cli/main.js>`; skipped without it)
 * racing this one on one due default login while another account exists:
 * one refresh, no reuse, the same token on both sides. Each side serves the
 * other's login and honours the other's logout.
 *
 * To run it: build the previous release somewhere (`git worktree add`, or
 * unpack its tarball, then `npm run build`) and point the variable at it.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { seedAccountLogin } from "../support/accounts.js"
import { type CliResult, isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"

const previous = process.env["KIMI_AUTH_PREVIOUS_CLI"]

let home: string
let emulator: StartedEmulator
beforeEach(async () => {
  home = makeTemp()
  emulator = await start({ interval: 1, users: [{ userId: "u-ada", nickname: "Ada" }, { userId: "u-bob", nickname: "Bob" }] })
})
afterEach(async () => {
  await emulator.close()
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const env = () => isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })

/** The previous release's CLI, as a child process. */
const runPrevious = (args: ReadonlyArray<string>): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [previous!, ...args], { env: env(), stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr } as CliResult)
    })
  })

const writeLogin = (file: string, userId: string, expiresAt: number) =>
  seedAccountLogin(emulator, storage(), file, userId, "mainland-cn", expiresAt)

describe.skipIf(previous === undefined)("the previous release beside this one", () => {
  it("one due default login raced from both: 1 refresh, 0 reuse; each serves the other's login and honours its logout", async () => {
    fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
    fs.writeFileSync(path.join(storage(), "device_id"), "0f0e0d0c-0b0a-4909-8807-060504030201", { mode: 0o600 })
    writeLogin("oauth.json", "u-ada", Math.floor(Date.now() / 1000) - 10)
    writeLogin("oauth.mainland-cn.u-bob.json", "u-bob", Math.floor(Date.now() / 1000) + 800)
    fs.writeFileSync(path.join(storage(), "accounts.json"), JSON.stringify({
      version: 1,
      accounts: [{ file: "oauth.json", user_id: "u-ada", region: "mainland-cn" }, { file: "oauth.mainland-cn.u-bob.json", user_id: "u-bob", region: "mainland-cn" }],
      active: { "mainland-cn": "oauth.json" },
      current: "oauth.json"
    }), { mode: 0o600 })

    const runs = await Promise.all([0, 1, 2, 3, 4].flatMap(() => [runPrevious(["token"]), runCli(["token"], env())]))
    for (const r of runs) expect(r.code, r.stderr).toBe(0)
    expect(new Set(runs.map((r) => r.stdout.trim())).size).toBe(1)
    expect(emulator.stats().refreshes).toBe(1)
    expect(emulator.stats().spentTokenReplays).toBe(0)

    // The previous release logs out: this one honours it (the default account has no login), Bob's stays.
    expect((await runPrevious(["logout"])).code).toBe(0)
    expect((await runCli(["token", "--account", "u-ada"], env())).code).toBe(7)
    expect((await runCli(["token", "--account", "u-bob"], env())).code).toBe(0)
    // This one logs in as Ada again, into oauth.json: the previous release serves it.
    const login = runCli(["login", "--no-browser", "--json"], env())
    for (let i = 0; i < 200 && emulator.deviceCodes().length === 0; i++) await new Promise((r) => setTimeout(r, 50))
    expect(emulator.approve(emulator.deviceCodes().at(-1)!.userCode, "u-ada")).toBe(true)
    expect((await login).code).toBe(0)
    const served = await runPrevious(["token"])
    expect(served.code, served.stderr).toBe(0)
    expect(served.stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(storage(), "oauth.json"), "utf8")).access_token)
    // And this one logs out the default account: the previous release honours it.
    expect((await runCli(["logout", "--account", "default"], env())).code).toBe(0)
    expect((await runPrevious(["token"])).code).toBe(7)
  }, 90_000)
})
