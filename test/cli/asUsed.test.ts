/**
 * `kimi-auth` as people use it (issue 15, "The CLI as people use it"): a
 * reader that leaves early, a typo, a bad flag value, a logged-out hint that
 * names OpenCode's real providers, a refused refresh that `status` reports
 * without a request, a login that shows what it does while the host is
 * unreachable, and the small wording fixes. Real child processes of the built
 * CLI, real loopback servers, real files; the terminal case under a pty.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp, runCli } from "../support/cli.js"
import { hasScript, runInPty, stripAnsi } from "../support/pty.js"
import { type RotatingServer, startRotatingServer } from "../support/rotatingServer.js"
import { seedLogin } from "../support/tokens.js"

let home: string
let server: RotatingServer | undefined
let emulator: StartedEmulator | undefined

beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await server?.close()
  server = undefined
  await emulator?.close()
  emulator = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const now = () => Math.floor(Date.now() / 1000)

/** A token file as Kimi's clients write it; `extra` adds fields (say `region`). */
const seed = (expiresAt: number, refresh = "rt-0", extra: Record<string, unknown> = {}) => {
  seedLogin(tokenFile(), { refresh, expiresAt, extra })
  fs.writeFileSync(path.join(storage(), "device_id"), "0f0e0d0c-0b0a-4909-8807-060504030201", { mode: 0o600 })
}

/** Stack-trace markers that must never reach a user. */
const NO_TRACE = /\n\s+at |EPIPE|Error: write|node:internal/

/**
 * Runs the CLI with its stdout (or stderr) pipe already closed by the reader,
 * as `kimi-auth status | head -0` would: every write to it fails with EPIPE.
 */
const runWithClosedPipe = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, closed: "stdout" | "stderr") =>
  new Promise<{ code: number | null; other: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    const open = closed === "stdout" ? child.stderr : child.stdout
    child[closed].destroy()
    let other = ""
    open.setEncoding("utf8").on("data", (c: string) => (other += c))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`timed out; ${closed === "stdout" ? "stderr" : "stdout"}: ${other}`))
    }, 30_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, other })
    })
  })

describe("a reader that leaves early (EPIPE): quiet, the command's own exit code", () => {
  it("status | head -1 through a real shell: the first line, no stack, exit 0", async () => {
    seed(now() + 800)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: "http://127.0.0.1:9" })
    for (let i = 0; i < 3; i++) {
      const r = spawnSync("bash", ["-c", `"${process.execPath}" "${cliPath}" status | head -1; echo "exit=\${PIPESTATUS[0]}" >&2`], {
        env,
        encoding: "utf8"
      })
      expect(r.stdout).toBe("✓ Logged in to Kimi.\n")
      expect(r.stderr).toBe("exit=0\n")
    }
  })

  it("stdout closed before the first write: status, --help and token (fast path and full) exit with their own code, stderr silent", async () => {
    seed(now() + 800)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: "http://127.0.0.1:9" })
    for (const [args, code] of [[["status"], 0], [["status", "--json"], 0], [["--help"], 0], [["token"], 0], [["token", "--debug"], 0]] as const) {
      const r = await runWithClosedPipe(args, env, "stdout")
      expect(r.other, args.join(" ")).not.toMatch(NO_TRACE)
      expect(r.code, `${args.join(" ")}: ${r.other}`).toBe(code)
    }
  })

  it("a refresh with stdout and stderr both gone still finishes and saves the rotated tokens", async () => {
    server = await startRotatingServer("rt-0", { delayMs: 100 })
    seed(now() - 60)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url })
    const r = await runWithClosedPipe(["token", "--debug"], env, "stdout")
    expect(r.other).not.toMatch(NO_TRACE)
    expect(r.code).toBe(0)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
    const r2 = await runWithClosedPipe(["token", "--debug"], env, "stderr")
    expect(r2.code).toBe(0)
    expect(r2.other).toBe("at-1\n")
  })
})

describe("logged out: the hint names OpenCode's real provider, by region", () => {
  it("token and usage name kimi-code-plan-cn, never the provider `kimi` that does not exist", async () => {
    const env = isolatedEnv(home)
    for (const args of [["token"], ["usage"], ["usage", "--json"]]) {
      const r = await runCli(args, env)
      expect(r.code).toBe(7)
      const text = r.stdout + r.stderr
      expect(text).toContain("opencode auth login -p kimi-code-plan-cn")
      expect(text).not.toMatch(/-p kimi[`\s]/)
    }
  })

  it("a refused refresh of a global login names kimi-code-plan-global and kimi-auth login --region global", async () => {
    server = await startRotatingServer("rt-other")
    seed(now() - 60, "rt-0", { region: "global" })
    const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(r.code).toBe(7)
    expect(r.stderr).toContain("`kimi-auth login --region global`")
    expect(r.stderr).toContain("`opencode auth login -p kimi-code-plan-global`")
    expect(r.stderr).not.toContain("kimi-code-plan-cn")
  })
})

describe("status after Kimi refused the refresh", () => {
  it("says the last refresh was refused (exit 7), without a request; a new login makes the note stale", async () => {
    server = await startRotatingServer("rt-other")
    // Valid for 4 more minutes, so due (inside the 5-minute window): `token` refreshes, and Kimi refuses.
    seed(now() + 240)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url })
    const refused = await runCli(["token"], env)
    expect(refused.code).toBe(7)
    const requests = server.requests.length

    const status = await runCli(["status"], env)
    expect(status.code, status.stdout).toBe(7)
    expect(status.stdout).not.toMatch(/Logged in to Kimi\./)
    expect(status.stdout).toMatch(/refused the last token refresh/)
    expect(status.stdout).toMatch(/kimi-auth login/)
    const json = await runCli(["status", "--json"], env)
    expect(json.code).toBe(7)
    expect(JSON.parse(json.stdout)).toMatchObject({ logged_in: false, refresh_refused: true })
    expect(server.requests.length).toBe(requests) // status never asks the server
    expect(status.stdout + json.stdout).not.toContain("rt-0")
    // The note beside the file: 0600, and no token in it (a fingerprint only).
    const note = `${tokenFile()}.refused`
    expect(fs.statSync(note).mode & 0o777).toBe(0o600)
    expect(fs.readFileSync(note, "utf8")).not.toMatch(/rt-0|at-0/)
    // A note of another size or shape than ours is ignored, not read into memory.
    fs.writeFileSync(note, "x".repeat(1 << 20))
    expect((await runCli(["status"], env)).code).toBe(0)
    seed(now() + 240)
    expect((await runCli(["token"], env)).code).toBe(7)

    // Another login (new tokens on disk): the note no longer applies.
    seed(now() + 800, "rt-new")
    const after = await runCli(["status"], env)
    expect(after.code).toBe(0)
    expect(after.stdout).toMatch(/^✓ Logged in to Kimi\./)
  })
})

/** A loopback port nobody listens on. */
const closedPort = async () => {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

describe("login against an unreachable host shows what it does", () => {
  it("piped: one line per retry on stderr, with the wait, long before it gives up", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`
    let stderr = ""
    let sawRetryAt = 0
    const startedAt = Date.now()
    const r = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: url }), {
      timeoutMs: 20_000,
      onSpawn: (child) =>
        child.stderr!.on("data", (c: Buffer) => {
          stderr += c.toString("utf8")
          if (sawRetryAt === 0 && /Trying again in \d+ s/.test(stderr)) {
            sawRetryAt = Date.now()
            child.kill("SIGINT")
          }
        })
    })
    expect(sawRetryAt, r.stderr).toBeGreaterThan(0)
    expect(sawRetryAt - startedAt).toBeLessThan(8000)
    expect(r.stderr).toMatch(new RegExp(`^Trying again in 1 s \\(attempt 2 of 5, Ctrl-C to stop\\): Cannot reach .*${url.replace(/[.:/]/g, "\\$&")}`))
    expect(r.stderr).not.toMatch(NO_TRACE)
    expect(r.code).toBe(130)
  })

  it("piped, while polling: each failed poll is one stderr line with the wait; stdout keeps only the code", async () => {
    emulator = await start({ interval: 1, faults: { serverErrorRate: 1, paths: ["/api/oauth/token"], seed: 1 } })
    let stderr = ""
    let signalled = false
    const r = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost }), {
      timeoutMs: 20_000,
      onSpawn: (child) =>
        child.stderr!.on("data", (c: Buffer) => {
          stderr += c.toString("utf8")
          // One Ctrl-C: a second one, from a later stderr chunk, would exit at once (by design), not with 130.
          if (!signalled && /Polling again in \d+ s/.test(stderr)) {
            signalled = true
            child.kill("SIGINT")
          }
        })
    })
    expect(r.stderr).toMatch(/^Polling again in 2 s: .*HTTP 5\d\d/m)
    expect(r.stdout).not.toMatch(/Polling again/)
    expect(r.code).toBe(130)
  })

  it.skipIf(!hasScript)("on a terminal: says which host it asks at once, then redraws the retry line in place", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: url, TERM: "xterm-256color" })
    delete env["NO_COLOR"]
    const run = runInPty(["login", "--no-browser"], env, { timeoutMs: 20_000 })
    await run.waitFor((o) => o.includes(`Asking ${url} for a login code…`), 8000)
    const output = await run.waitFor((o) => /Trying again in 1 s/.test(o), 8000)
    expect(stripAnsi(output)).not.toMatch(NO_TRACE)
    expect(output).toMatch(/\r\x1b\[2KTrying again in 1 s \(attempt 2 of 5, Ctrl-C to stop\): Cannot reach/)
    run.type("\x03")
    const { code } = await run.exited
    expect(code).toBe(130)
  })
})

describe("a command line with a mistake: the problem first and briefly", () => {
  it("a typo: the suggestion on the first line, two lines in all, nothing on stdout, exit 2", async () => {
    const r = await runCli(["stauts"], isolatedEnv(home))
    expect(r.code).toBe(2)
    expect(r.stdout).toBe("")
    const lines = r.stderr.trimEnd().split("\n")
    expect(lines[0]).toMatch(/unknown command "stauts"\. Did you mean "status"\?/)
    expect(lines.length).toBeLessThanOrEqual(2)
    expect(r.stderr).toContain("kimi-auth --help")
  })

  it("--port abc and --latency x say what they take, not 'a string representing a finite number'", async () => {
    const port = await runCli(["emulator", "--port", "abc"], isolatedEnv(home))
    expect(port.code).toBe(2)
    expect(port.stderr).toMatch(/--port: "abc"\. Expected a port number from 0 to 65535/)
    const latency = await runCli(["emulator", "--latency", "x"], isolatedEnv(home))
    expect(latency.code).toBe(2)
    expect(latency.stderr).toMatch(/--latency: "x"\. Expected a number of milliseconds/)
    for (const r of [port, latency]) {
      expect(r.stderr).not.toMatch(/string representing|finite number/)
      expect(r.stdout).toBe("")
      expect(r.stderr.trimEnd().split("\n").length).toBeLessThanOrEqual(2)
    }
  })

  it("KIMI_CODE_BASE_URL=garbage offers an API URL as the example, not the OAuth host", async () => {
    const r = await runCli(["status"], isolatedEnv(home, { KIMI_CODE_BASE_URL: "garbage" }))
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/KIMI_CODE_BASE_URL.*"garbage" is not a URL\. Give a full URL such as https:\/\/api\.kimi\.com\/coding\/v1\./)
  })
})

describe("help", () => {
  it("the exit codes are listed once, on their own page; no help names --wizard or --log-level; both are refused", async () => {
    const r = await runCli(["--help"], isolatedEnv(home))
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("kimi-auth help exit-codes")
    expect((await runCli(["help", "exit-codes"], isolatedEnv(home))).stdout.match(/\b143\b/g)).toHaveLength(1)
    expect(r.stdout).not.toMatch(/--wizard|--log-level/)
    for (const sub of ["login", "status", "token", "usage", "logout", "emulator"]) {
      const h = await runCli([sub, "--help"], isolatedEnv(home))
      expect(h.stdout).not.toMatch(/--wizard|--log-level/)
      expect(h.stdout).toMatch(/--debug/)
    }
    for (const args of [["--wizard"], ["status", "--log-level", "debug"]]) {
      const bad = await runCli(args, isolatedEnv(home))
      expect(bad.code).toBe(2)
    }
  })

  it("README's exit codes are the ones the help lists", async () => {
    const readme = fs.readFileSync(path.join(repoRoot, "README.md"), "utf8")
    const line = /^Exit codes: (.*)$/m.exec(readme)![1]!
    const help = (await runCli(["help", "exit-codes"], isolatedEnv(home))).stdout.replace(/\s+/g, " ")
    const codes = (text: string) => [...text.matchAll(/\b(\d+) ([a-z]+)/g)].map((m) => `${m[1]} ${m[2]}`)
    expect(codes(line).length).toBeGreaterThanOrEqual(10)
    expect(codes(help.slice(help.indexOf(":") + 1))).toEqual(codes(line))
  })

  it("kimi-auth emulator --debug starts and logs each request on stderr, no secret", async () => {
    const child = spawn(process.execPath, [cliPath, "emulator", "--debug", "--port", "0"], {
      env: isolatedEnv(home),
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      let stdout = ""
      let stderr = ""
      child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no banner; stderr: ${stderr}`)), 15_000)
        child.stdout.setEncoding("utf8").on("data", (c: string) => {
          stdout += c
          const m = /listening on (http:\/\/\S+)/.exec(stdout)
          if (m) {
            clearTimeout(timer)
            resolve(m[1]!)
          }
        })
        child.on("exit", (code) => reject(new Error(`exited ${code}; stderr: ${stderr}`)))
      })
      const res = await fetch(`${url}/api/oauth/device_authorization`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "client_id=17e5f671-d194-4dfb-9706-5516cb48c098"
      })
      const body = (await res.json()) as { device_code: string }
      const deadline = Date.now() + 10_000
      while (!/POST \/api\/oauth\/device_authorization -> 200/.test(stderr) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20))
      }
      expect(stderr).toMatch(/DEBUG.*emulator: POST \/api\/oauth\/device_authorization -> 200/)
      expect(stderr).not.toContain(body.device_code)
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGINT")
        await new Promise((r) => child.once("close", r))
      }
    }
  })
})

describe("small wording", () => {
  it("status: 'refresh due in', not 'refreshed in'; no empty device id", async () => {
    seed(now() + 800)
    const r = await runCli(["status"], isolatedEnv(home))
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/; refresh due in \d+m \d\ds, with the stored refresh token/)
    expect(r.stdout).not.toMatch(/refreshed in/)
    fs.rmSync(path.join(storage(), "device_id"))
    fs.rmSync(tokenFile())
    const out = await runCli(["status"], isolatedEnv(home))
    expect(out.code).toBe(7)
    expect(out.stdout).not.toMatch(/device id:\s*$/m)
    expect(out.stdout).toMatch(/device id: +\(none yet/)
  })

  it("login over an existing login says it replaces it, before and after the approval", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 300 })
    // A login of the emulator's user: logging in again as the same Kimi user replaces it (another user would add an account).
    const issued = emulator.issueTokens()
    seed(now() + 800, issued.refreshToken, { access_token: issued.accessToken })
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })
    const r = await runCli(["login", "--no-browser"], env)
    expect(r.code, r.stderr).toBe(0)
    const before = r.stdout.indexOf("replaces the stored one")
    expect(before).toBeGreaterThanOrEqual(0)
    expect(before).toBeLessThan(r.stdout.indexOf("Code:"))
    expect(r.stdout).toMatch(/✓ Logged in to Kimi \(the previous login was replaced\)\./)
    const json = await runCli(["login", "--no-browser", "--json"], env)
    const events = json.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events[0]).toMatchObject({ event: "code", replaces_login: true })
    expect(events.at(-1)).toMatchObject({ event: "logged_in", replaced_login: true })
  })
})
