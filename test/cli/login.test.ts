/**
 * `kimi-auth login` as a real child process against a scripted OAuth server on
 * loopback: what the server saw, the exit code, the message, the files on disk.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { start as startEmulator } from "../../src/emulator/KimiEmulator.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

const CLIENT_ID = "17e5f671-d194-4dfb-9706-5516cb48c098"
const HEADERS = ["x-msh-platform", "x-msh-version", "x-msh-device-name", "x-msh-device-model", "x-msh-os-version", "x-msh-device-id"]

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

const deviceAuthorization = (url: string, over: Record<string, unknown> = {}): Reply => ({
  status: 200,
  body: {
    device_code: "dev-code-secret",
    user_code: "KIMI-2468",
    verification_uri: `${url}/device`,
    verification_uri_complete: `${url}/device?user_code=KIMI-2468`,
    expires_in: 60,
    interval: 1,
    ...over
  }
})

/** A server that answers the device authorization, then `polls` in order for the token endpoint. */
const oauthServer = (polls: ReadonlyArray<Reply>, over: Record<string, unknown> = {}) =>
  startScriptedServer((req, all) => {
    if (req.path === "/api/oauth/device_authorization") return deviceAuthorization(server!.url, over)
    if (req.path === "/api/oauth/token") {
      const n = all.filter((r) => r.path === "/api/oauth/token").length
      return polls[Math.min(n - 1, polls.length - 1)]!
    }
    return { status: 404, body: { error: "not_found" } }
  })

const pending: Reply = { status: 400, body: { error: "authorization_pending" } }
const granted: Reply = {
  status: 200,
  body: { access_token: "at-from-server", refresh_token: "rt-from-server", expires_in: 900, token_type: "Bearer", scope: "kimi-code" }
}

describe("kimi-auth login", () => {
  it("logs in: shows the code, polls at the interval with every header, stores the tokens 0600 in a 0700 folder", async () => {
    server = await oauthServer([pending, pending, granted])
    const started = Date.now()
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    const finished = Date.now()

    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("KIMI-2468")
    expect(result.stdout).toContain(`${server.url}/device?user_code=KIMI-2468`)
    const dir = path.join(home, ".opencode-kimi-auth")
    const file = path.join(dir, "oauth.json")
    expect(result.stdout).toContain(`Tokens saved to ${file}`)
    expect(result.stdout).not.toContain("at-from-server")
    expect(result.stdout).not.toContain("rt-from-server")

    // what the server saw
    const [authz, ...polls] = server.requests
    expect(authz!.path).toBe("/api/oauth/device_authorization")
    expect(authz!.form).toEqual({ client_id: CLIENT_ID })
    expect(polls).toHaveLength(3)
    for (const p of polls) {
      expect(p.form).toEqual({
        client_id: CLIENT_ID,
        device_code: "dev-code-secret",
        grant_type: "urn:ietf:params:oauth:grant-type:device_code"
      })
    }
    for (const r of server.requests) {
      expect(r.method).toBe("POST")
      expect(r.headers["content-type"]).toContain("application/x-www-form-urlencoded")
      expect(r.headers["accept"]).toBe("application/json")
      for (const h of HEADERS) expect(r.headers[h], h).toMatch(/^[\x20-\x7e]+$/)
    }
    // poll spacing: the first poll waits one interval, later ones at least one interval apart
    const times = server.requests.map((r) => r.at)
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1000)
    expect(finished - started).toBeLessThan(20_000)

    // the files
    const stat = fs.statSync(file)
    expect(stat.mode & 0o777).toBe(0o600)
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700)
    const stored = JSON.parse(fs.readFileSync(file, "utf8"))
    expect(stored).toMatchObject({
      access_token: "at-from-server",
      refresh_token: "rt-from-server",
      token_type: "Bearer",
      expires_in: 900,
      scope: "kimi-code"
    })
    expect(stored.expires_at).toBeGreaterThanOrEqual(Math.floor(started / 1000) + 900)
    expect(stored.expires_at).toBeLessThanOrEqual(Math.ceil(finished / 1000) + 900)
    const deviceId = fs.readFileSync(path.join(dir, "device_id"), "utf8").trim()
    expect(fs.statSync(path.join(dir, "device_id")).mode & 0o777).toBe(0o600)
    expect(stored.device_id).toBe(deviceId)
    for (const r of server.requests) expect(r.headers["x-msh-device-id"]).toBe(deviceId)
  })

  it("the device id is reused by a second login", async () => {
    server = await oauthServer([granted])
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url })
    expect((await runCli(["login", "--no-browser"], env)).code).toBe(0)
    expect((await runCli(["login", "--no-browser"], env)).code).toBe(0)
    const ids = new Set(server.requests.map((r) => r.headers["x-msh-device-id"]))
    expect(ids.size).toBe(1)
  })

  it("denied: exit 3 and a message that says the login was refused", async () => {
    server = await oauthServer([pending, { status: 400, body: { error: "access_denied" } }])
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(result.code).toBe(3)
    expect(result.stderr).toMatch(/refused/)
    expect(result.stderr).toMatch(/kimi-auth login/)
    expect(fs.existsSync(path.join(home, ".opencode-kimi-auth", "oauth.json"))).toBe(false)
  })

  it("expired: exit 4 and a message that says to run login again", async () => {
    server = await oauthServer([{ status: 400, body: { error: "expired_token" } }])
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(result.code).toBe(4)
    expect(result.stderr).toMatch(/expired/)
    expect(result.stderr).toMatch(/kimi-auth login/)
  })

  it("a 503 after approval is retried, and the login still succeeds", async () => {
    server = await oauthServer([pending, { status: 503, body: "<html>upstream down</html>" }, granted])
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(result.code).toBe(0)
    expect(server.requests.filter((r) => r.path === "/api/oauth/token")).toHaveLength(3)
  })

  it("network failure: exit 5 and a message naming the host", async () => {
    server = await oauthServer([granted])
    const url = server.url
    await server.close()
    server = undefined
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: url }))
    expect(result.code).toBe(5)
    expect(result.stderr).toContain(url)
    expect(result.stderr).toMatch(/Cannot reach/)
    // The process has exited: the last word must not promise a retry.
    expect(result.stderr).not.toMatch(/will be retried/i)
    expect(result.stderr).toMatch(/gave up after several attempts/)
  })

  it("a server that stays 503: exit 5, and the message says the login gave up, not that it will retry", async () => {
    server = await startScriptedServer(() => ({ status: 503, body: "<html>upstream down</html>" }))
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }), { timeoutMs: 60_000 })
    expect(result.code).toBe(5)
    expect(result.stderr).toMatch(/HTTP 503/)
    expect(result.stderr).not.toMatch(/will be retried/i)
    expect(result.stderr).toMatch(/gave up after several attempts; try again in a few minutes/)
    expect(server.requests.length).toBeGreaterThan(1)
  }, 70_000)

  it("an HTML page instead of JSON: exit 6 with the status and an excerpt", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: "<html><body>Captive portal</body></html>" }))
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(result.code).toBe(6)
    expect(result.stderr).toMatch(/HTTP 200/)
    expect(result.stderr).toMatch(/Captive portal/)
  })

  it("a plain-http OAuth host off loopback is refused before any request: exit 2", async () => {
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: "http://auth.example.com" }))
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/plain http/)
  })

  it("--json prints one event per line", async () => {
    server = await oauthServer([granted])
    const result = await runCli(["login", "--no-browser", "--json"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(result.code).toBe(0)
    const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(events[0]).toMatchObject({ event: "code", user_code: "KIMI-2468", expires_in: 60, interval: 1 })
    expect(events.at(-1)).toMatchObject({ event: "logged_in" })
  })

  it("SIGINT while waiting stops polling at once, exits 130 and stores nothing", async () => {
    server = await oauthServer([pending])
    const result = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }), {
      onSpawn: (child) => {
        const timer = setInterval(() => {
          if (server!.requests.length >= 2) {
            clearInterval(timer)
            child.kill("SIGINT")
          }
        }, 20)
      }
    })
    expect(result.code).toBe(130)
    expect(result.stderr).toBe("Login cancelled; nothing was stored.\n")
    const polls = server.requests.length
    await new Promise((r) => setTimeout(r, 2500))
    expect(server.requests.length).toBe(polls)
    expect(fs.existsSync(path.join(home, ".opencode-kimi-auth", "oauth.json"))).toBe(false)
  })

  describe("with a display, the browser opener's result decides what is said", () => {
    /** A bin folder with an `xdg-open` that records its argument and exits with `code` (none: no opener at all). */
    const opener = (code: number | undefined) => {
      const bin = path.join(home, "bin")
      fs.mkdirSync(bin, { recursive: true })
      if (code !== undefined) {
        fs.writeFileSync(path.join(bin, "xdg-open"), `#!/bin/sh\nprintf '%s' "$1" > "${path.join(home, "opened")}"\nexit ${code}\n`, { mode: 0o755 })
      }
      return { PATH: bin, DISPLAY: ":77" }
    }
    const onLinux = process.platform === "linux"

    it.runIf(onLinux)("an opener that exits 0 was given the link: 'Opened the page in your browser.'", async () => {
      server = await oauthServer([granted])
      const result = await runCli(["login"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, ...opener(0) }))
      expect(result.code, result.stderr).toBe(0)
      expect(fs.readFileSync(path.join(home, "opened"), "utf8")).toBe(`${server.url}/device?user_code=KIMI-2468`)
      expect(result.stdout).toContain("Opened the page in your browser.")
    })

    it.runIf(onLinux)("an opener that fails: says it could not open a browser, with the exit code, and the login goes on", async () => {
      server = await oauthServer([granted])
      const result = await runCli(["login"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, ...opener(3) }))
      expect(result.code, result.stderr).toBe(0)
      expect(fs.existsSync(path.join(home, "opened"))).toBe(true)
      expect(result.stdout).not.toContain("Opened the page")
      expect(result.stdout).toContain("Could not open a browser (xdg-open exited with code 3); open the link above yourself.")
      expect(result.stdout).toContain("Logged in to Kimi")
    })

    it.runIf(onLinux)("no opener installed: says xdg-open was not found; --json reports it as an event", async () => {
      server = await oauthServer([granted])
      const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, ...opener(undefined) })
      const result = await runCli(["login"], env)
      expect(result.code, result.stderr).toBe(0)
      expect(result.stdout).not.toContain("Opened the page")
      expect(result.stdout).toContain("Could not open a browser (xdg-open was not found); open the link above yourself.")
      const json = await runCli(["login", "--json"], env)
      const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l))
      expect(events.map((e) => e.event)).toEqual(["code", "browser", "logged_in"])
      expect(events[1]).toEqual({ event: "browser", opened: false, reason: "xdg-open was not found" })
    })
  })

  it("--json: Ctrl-C ends with a cancelled event and exit 130", async () => {
    server = await oauthServer([pending])
    const result = await runCli(["login", "--no-browser", "--json"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }), {
      onSpawn: (child) => {
        const timer = setInterval(() => {
          if (server!.requests.length >= 2) {
            clearInterval(timer)
            child.kill("SIGINT")
          }
        }, 20)
      }
    })
    expect(result.code).toBe(130)
    const events = result.stdout.trim().split("\n").map((l) => JSON.parse(l))
    expect(events.at(-1)).toEqual({ event: "cancelled", exit_code: 130 })
    expect(result.stderr).toBe("")
  })

  describe("--region", () => {
    /** Runs `login ...args --debug` until its debug line names the OAuth host, then Ctrl-C; returns that host. */
    const hostChosen = async (args: ReadonlyArray<string>) => {
      let host: string | undefined
      const result = await runCli(["login", "--no-browser", "--debug", ...args], isolatedEnv(home), {
        onSpawn: (child) => {
          let stderr = ""
          child.stderr!.on("data", (c: Buffer) => {
            stderr += c.toString("utf8")
            const m = /login: OAuth host (\S+), API base (\S+),/.exec(stderr)
            if (m && host === undefined) {
              host = `${m[1]} ${m[2]}`
              child.kill("SIGINT")
            }
          })
        }
      })
      expect(result.code, result.stderr).toBe(130)
      return host
    }

    it("picks the region's hosts: mainland-cn (the default) is kimi.com, global is kimi.ai", async () => {
      expect(await hostChosen([])).toBe("https://auth.kimi.com https://api.kimi.com/coding/v1")
      expect(await hostChosen(["--region", "mainland-cn"])).toBe("https://auth.kimi.com https://api.kimi.com/coding/v1")
      expect(await hostChosen(["--region", "global"])).toBe("https://auth.kimi.ai https://api.kimi.ai/coding/v1")
    })

    it("against the emulator (env hosts still win): the login is stored with its region, and status shows it", async () => {
      const emulator = await startEmulator({ interval: 1, autoApproveAfterMillis: 300 })
      try {
        const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })
        const login = await runCli(["login", "--no-browser", "--json", "--region", "global"], env)
        expect(login.code, login.stderr).toBe(0)
        expect(JSON.parse(login.stdout.trim().split("\n").at(-1)!)).toMatchObject({
          event: "logged_in",
          region: "global",
          oauth_host: emulator.oauthHost,
          api_base_url: emulator.apiBaseUrl
        })
        expect(emulator.requests("/api/oauth/device_authorization")).toHaveLength(1)
        const stored = JSON.parse(fs.readFileSync(path.join(home, ".opencode-kimi-auth", "oauth.json"), "utf8"))
        expect(stored).toMatchObject({ region: "global", oauth_host: emulator.oauthHost, api_base_url: emulator.apiBaseUrl })

        const status = await runCli(["status"], env)
        expect(status.code, status.stderr).toBe(0)
        expect(status.stdout).toMatch(/^ {2}region: {7}global$/m)
        expect(JSON.parse((await runCli(["status", "--json"], env)).stdout)).toMatchObject({ logged_in: true, region: "global" })

        // A later login without --region is a mainland-cn login.
        expect((await runCli(["login", "--no-browser"], env)).code).toBe(0)
        expect(JSON.parse((await runCli(["status", "--json"], env)).stdout)).toMatchObject({ region: "mainland-cn" })
      } finally {
        await emulator.close()
      }
    })

    it("an unknown region: exit 2 and the parser names the choices", async () => {
      const r = await runCli(["login", "--region", "mars"], isolatedEnv(home))
      expect(r.code).toBe(2)
      expect(r.stdout + r.stderr).toMatch(/mainland-cn/)
      expect(r.stdout + r.stderr).toMatch(/global/)
    })
  })

  it("--help documents the command", async () => {
    const result = await runCli(["login", "--help"], isolatedEnv(home))
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/--no-browser|--browser/)
    expect(result.stdout).toMatch(/device flow/)
  })
})
