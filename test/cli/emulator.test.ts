/**
 * `kimi-auth emulator` as a real child process, used the way the README tells
 * people to: log in against it, call its API with `kimi-auth token`, force a
 * refresh, stop it with Ctrl-C. And `--help` of every command.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { cliPath, isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"

let home: string
const children: Array<ChildProcessWithoutNullStreams> = []

beforeEach(() => {
  home = makeTemp()
})
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL")
  rmTemp(home)
})

const tokenFile = () => path.join(home, ".opencode-kimi-auth", "oauth.json")
const readTokenFile = () => JSON.parse(fs.readFileSync(tokenFile(), "utf8")) as Record<string, unknown>

interface RunningEmulator {
  readonly url: string
  readonly child: ChildProcessWithoutNullStreams
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Starts `kimi-auth emulator ...args` and resolves once it printed its URL line. */
const startEmulator = (args: ReadonlyArray<string>): Promise<RunningEmulator> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, "emulator", ...args], {
      env: isolatedEnv(home),
      stdio: ["pipe", "pipe", "pipe"]
    })
    children.push(child)
    let stdout = ""
    let stderr = ""
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
      child.on("close", (code, signal) => r({ code, signal }))
    )
    const timer = setTimeout(() => reject(new Error(`no URL line within 15 s; stdout: ${stdout}; stderr: ${stderr}`)), 15_000)
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
      const m = /^Kimi emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/m.exec(stdout)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1]!, child, stdout: () => stdout, stderr: () => stderr, exited })
      }
    })
    child.on("error", reject)
    void exited.then(({ code }) => reject(new Error(`the emulator exited (${code}) before its URL line; stderr: ${stderr}`)))
  })

const models = (url: string, token?: string) =>
  fetch(`${url}/coding/v1/models`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })

/** Logs in against the emulator at `url` (storage in its own folder) and returns the access token `kimi-auth token` prints. */
const tokenFrom = async (url: string, name: string) => {
  const env = isolatedEnv(home, {
    KIMI_OAUTH_HOST: url,
    KIMI_CODE_BASE_URL: `${url}/coding/v1`,
    OPENCODE_KIMI_AUTH_DIR: path.join(home, name)
  })
  const login = await runCli(["login", "--no-browser"], env)
  expect(login.code, login.stderr).toBe(0)
  const token = await runCli(["token"], env)
  expect(token.code, token.stderr).toBe(0)
  return token.stdout.trim()
}

const chat = (url: string, token: string) =>
  fetch(`${url}/coding/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
  })

describe("kimi-auth emulator", () => {
  it("login, token, a call to its API, a forced refresh with rotation, then Ctrl-C stops it", async () => {
    const emulator = await startEmulator(["--port", "0", "--auto-approve", "500", "--interval", "1"])
    expect(emulator.stdout().split("\n")[0]).toBe(`Kimi emulator listening on ${emulator.url}`)
    expect(Number(new URL(emulator.url).port)).toBeGreaterThan(0)
    // The hint lines may arrive in a later chunk than the URL line.
    for (let i = 0; i < 100 && !emulator.stdout().includes("Approve login"); i++) await new Promise((r) => setTimeout(r, 50))
    expect(emulator.stdout()).toContain("auto-approve after 500 ms")
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.url, KIMI_CODE_BASE_URL: `${emulator.url}/coding/v1` })

    // login against it
    const login = await runCli(["login", "--no-browser"], env)
    expect(login.code, login.stderr).toBe(0)
    expect(login.stdout).toContain(`Open:  ${emulator.url}/device?user_code=`)
    expect(login.stdout).toContain(`✓ Logged in to Kimi. Tokens saved to ${tokenFile()}`)
    const first = readTokenFile()

    // the token it prints is one the API accepts (and the API does check: no token, no answer)
    const token = await runCli(["token"], env)
    expect(token.code, token.stderr).toBe(0)
    expect(token.stderr).toBe("")
    expect(token.stdout).toBe(`${first["access_token"]}\n`)
    const accessToken = token.stdout.trim()
    const ok = await models(emulator.url, accessToken)
    expect(ok.status).toBe(200)
    expect(((await ok.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toContain("kimi-for-coding")
    expect((await models(emulator.url)).status).toBe(401)
    expect((await models(emulator.url, `${accessToken}x`)).status).toBe(401)

    // status names this emulator
    const status = JSON.parse((await runCli(["status", "--json"], env)).stdout)
    expect(status).toMatchObject({ logged_in: true, oauth_host: emulator.url, api_base_url: `${emulator.url}/coding/v1` })

    // an expired token on disk: `token` refreshes, the refresh token rotates, the new token works
    fs.writeFileSync(tokenFile(), JSON.stringify({ ...first, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    const refreshed = await runCli(["token"], env)
    expect(refreshed.code, refreshed.stderr).toBe(0)
    expect(refreshed.stderr).toBe("")
    const second = readTokenFile()
    const newToken = refreshed.stdout.trim()
    expect(refreshed.stdout).toBe(`${newToken}\n`)
    expect(newToken).not.toBe(accessToken)
    expect(newToken).toBe(second["access_token"])
    expect(second["refresh_token"]).not.toBe(first["refresh_token"])
    expect(second["expires_at"] as number).toBeGreaterThan(Date.now() / 1000 + 800)
    expect(fs.statSync(tokenFile()).mode & 0o777).toBe(0o600)
    expect((await models(emulator.url, newToken)).status).toBe(200)
    // and the next call serves it as is
    expect((await runCli(["token"], env)).stdout).toBe(`${newToken}\n`)

    // Ctrl-C: it stops promptly, quietly, with the "interrupted" exit code
    const stoppedAt = Date.now()
    emulator.child.kill("SIGINT")
    const { code, signal } = await emulator.exited
    expect(Date.now() - stoppedAt).toBeLessThan(3000)
    expect({ code, signal }).toEqual({ code: 130, signal: null })
    expect(emulator.stderr()).toBe("")
    await expect(models(emulator.url, newToken)).rejects.toThrow()
  })

  it("a port already in use: exit 2 and a message, no trace", async () => {
    const first = await startEmulator(["--port", "0"])
    const port = new URL(first.url).port
    const second = await runCli(["emulator", "--port", port], isolatedEnv(home), { timeoutMs: 15_000 })
    expect(second.code).toBe(2)
    expect(second.stderr).toMatch(/the emulator could not start/)
    expect(second.stderr).not.toMatch(/\n\s+at /)
    first.child.kill("SIGINT")
    await first.exited
  })

  it("fault and client flags: 429 with Retry-After only on the paths named, another client id refused", async () => {
    const emulator = await startEmulator([
      "--port", "0", "--rate-limit-rate", "1", "--retry-after", "7", "--fault-paths", "/coding/v1", "--seed", "3",
      "--client-id", "another-client"
    ])
    const limited = await models(emulator.url, "anything")
    expect(limited.status).toBe(429)
    expect(limited.headers.get("retry-after")).toBe("7")
    // the OAuth endpoints are outside the fault paths; our client id is not the accepted one
    const login = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.url }), { timeoutMs: 30_000 })
    expect(login.code).toBe(6)
    expect(login.stderr).toMatch(/invalid_client/)
    emulator.child.kill("SIGINT")
    await emulator.exited
  })

  it("quota flags: /usages shows the limits, the chat past the limit gets Kimi's 429; --rate-limited refuses every chat", async () => {
    const emulator = await startEmulator([
      "--port", "0", "--auto-approve", "200", "--interval", "1", "--quota-5h", "2", "--quota-week", "5", "--quota-refusal", "429",
      "--usages", "old"
    ])
    for (let i = 0; i < 100 && !emulator.stdout().includes("Quota:"); i++) await new Promise((r) => setTimeout(r, 50))
    expect(emulator.stdout()).toContain("Quota:         2 chat completions per 5 hours, 5 per week")
    const token = await tokenFrom(emulator.url, "a")
    expect((await chat(emulator.url, token)).status).toBe(200)
    expect((await chat(emulator.url, token)).status).toBe(200)
    const refused = await chat(emulator.url, token)
    expect(refused.status).toBe(429)
    expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("exceeded_current_quota_error")
    const usages = await fetch(`${emulator.url}/coding/v1/usages`, { headers: { authorization: `Bearer ${token}` } })
    const body = (await usages.json()) as { usage: unknown; limits: Array<unknown> }
    expect(body.usage).toMatchObject({ limit: "5", used: "2", remaining: "3" })
    expect(body.limits[0]).toMatchObject({
      window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" },
      detail: { limit: "2", used: "2", remaining: "0" }
    })
    emulator.child.kill("SIGINT")
    await emulator.exited

    const limited = await startEmulator(["--port", "0", "--auto-approve", "200", "--interval", "1", "--rate-limited", "--retry-after", "4"])
    const r = await chat(limited.url, await tokenFrom(limited.url, "b"))
    expect(r.status).toBe(429)
    expect(r.headers.get("retry-after")).toBe("4")
    expect(((await r.json()) as { error: { type: string } }).error.type).toBe("rate_limit_reached_error")
    limited.child.kill("SIGINT")
    await limited.exited
  })

  it("a malformed flag: exit 2 with the parser's message", async () => {
    const r = await runCli(["emulator", "--port", "nope"], isolatedEnv(home), { timeoutMs: 15_000 })
    expect(r.code).toBe(2)
    expect(r.stdout + r.stderr).toMatch(/port/)
  })
})

describe("--help", () => {
  const commands: ReadonlyArray<ReadonlyArray<string>> = [[], ["login"], ["status"], ["token"], ["logout"], ["emulator"]]

  it.each(commands.map((c) => [c.join(" ") || "(root)", c] as const))("kimi-auth %s --help: exit 0, a description and examples", async (_, command) => {
    const r = await runCli([...command, "--help"], isolatedEnv(home), { timeoutMs: 15_000 })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    // The short page (issue 24): a one-line description first, then the usage, then examples.
    expect(r.stdout).toMatch(/^kimi-auth( \S+)?: \S/)
    expect(r.stdout).toMatch(/^Usage: kimi-auth /m)
    const examples = r.stdout.split(/^Examples:$/m)[1]
    expect(examples, r.stdout).toBeDefined()
    // at least one runnable example, each with its explanation
    expect(examples).toMatch(/^ {2}# \S.*\n {2}.*kimi-auth \S/m)
    if (command.length > 0) expect(examples).toContain(`kimi-auth ${command[0]}`)
    expect(r.stdout).not.toMatch(/\x1b/)
  })
})
