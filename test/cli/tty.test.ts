/**
 * What `kimi-auth` shows, on a real terminal (a pseudo-terminal from util-linux
 * `script`) and through a pipe, against the Kimi emulator running in this
 * process: the framed code, the QR code of the approval link, the live
 * countdown, Ctrl-C; plain parseable lines and JSON when piped; debug logs on
 * stderr that never show a secret.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { encode } from "uqr"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { type CliResult, isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { hasScript, runInPty, stripAnsi } from "../support/pty.js"

let home: string
let emulator: StartedEmulator | undefined

beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  await emulator?.close()
  emulator = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const readTokenFile = () => JSON.parse(fs.readFileSync(tokenFile(), "utf8")) as Record<string, unknown>

/**
 * The environment of an interactive user: colour allowed (NO_COLOR unset), a
 * capable TERM, no display (so no browser), storage and HOME in the temp dir.
 */
const userEnv = (extra: Record<string, string> = {}) => {
  const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emulator!.oauthHost, TERM: "xterm-256color", ...extra })
  delete env["NO_COLOR"]
  delete env["FORCE_COLOR"]
  delete env["CI"]
  return env
}

const tokenPolls = () => emulator!.requests("/api/oauth/token").filter((r) => r.form?.["grant_type"]?.endsWith("device_code")).length

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Stack-trace and defect markers that must never reach a user. */
const NO_TRACE = /\n\s+at |FiberFailure|InterruptedException|Error: |\{ *_id|_tag/

// ---------------------------------------------------------------------------

/**
 * Reads the QR code block (lines of `█▀▄ `, one text row per two modules; `█`
 * is a light pair, ` ` a dark pair, as uqr draws it for dark terminals) back
 * into modules and checks they are exactly uqr's encoding of `text` inside a
 * light quiet zone.
 */
const qrEncodes = (block: ReadonlyArray<string>, text: string): boolean => {
  const width = block[0]!.length
  if (block.some((l) => [...l].length !== width)) return false
  const dark: Array<Array<boolean>> = []
  for (const line of block) {
    const top: Array<boolean> = []
    const bottom: Array<boolean> = []
    for (const ch of line) {
      top.push(ch === " " || ch === "▄")
      bottom.push(ch === " " || ch === "▀")
    }
    dark.push(top, bottom)
  }
  const modules = encode(text, { border: 0 }).data
  const size = modules.length
  const border = (width - size) / 2
  if (!Number.isInteger(border) || border < 1) return false
  for (let y = 0; y < width; y++) {
    for (let x = 0; x < width; x++) {
      const inside = y >= border && y < border + size && x >= border && x < border + size
      const expected = inside ? modules[y - border]![x - border]! : false
      if (dark[y]![x] !== expected) return false
    }
  }
  return true
}

describe.skipIf(!hasScript)("kimi-auth login on a terminal (pty)", () => {
  it("shows a QR code of the approval link, the link and the code in a box, a live countdown, then the success line", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 3500 })
    const run = runInPty(["login", "--no-browser"], userEnv(), { timeoutMs: 20_000 })
    const { code, output } = await run.exited
    expect(code, output).toBe(0)
    expect(output).not.toMatch(NO_TRACE)

    const [device] = emulator.deviceCodes()
    const userCode = device!.userCode
    const url = `${emulator.url}/device?user_code=${userCode}`
    const lines = output.split("\r\n")

    // The QR code: a block of half-block lines that decodes to verification_uri_complete, before the box.
    const qrStart = lines.findIndex((l) => /^[█▀▄ ]{21,}$/.test(l))
    expect(qrStart, output).toBeGreaterThanOrEqual(0)
    const qrEnd = lines.findIndex((l, i) => i > qrStart && !/^[█▀▄ ]+$/.test(l))
    const qr = lines.slice(qrStart, qrEnd)
    expect(qr.length).toBeGreaterThanOrEqual(11)
    expect(qr.join("")).toMatch(/▀/)
    expect(qr.join("")).toMatch(/▄/)
    expect(qrEncodes(qr, url), qr.join("\n")).toBe(true)

    // The box: rounded corners, every row as wide as the top, the link and the code inside.
    const top = lines.findIndex((l) => l.startsWith("╭"))
    const bottom = lines.findIndex((l) => l.startsWith("╰"))
    expect(top).toBeGreaterThan(qrEnd - 1)
    expect(bottom).toBeGreaterThan(top + 3)
    const box = lines.slice(top, bottom + 1).map(stripAnsi)
    expect(box[0]).toMatch(/^╭─+╮$/)
    expect(box.at(-1)).toMatch(/^╰─+╯$/)
    for (const row of box.slice(1, -1)) {
      expect(row).toMatch(/^│ .* │$/)
      expect([...row].length).toBe([...box[0]!].length)
    }
    expect(box).toContainEqual(expect.stringMatching(new RegExp(`^│ Open:  ${reEscape(url)} +│$`)))
    expect(box).toContainEqual(expect.stringMatching(new RegExp(`^│ Code:  ${userCode} +│$`)))
    // Copyable: the code and the link are single runs of text, no escape sequence inside them.
    expect(output).toContain(userCode)
    expect(output).toContain(url)
    expect(output).toMatch(/\x1b\[1m/) // styled: this is a terminal

    // The countdown: one line redrawn in place (\r + clear line), counting down second by second from 15:00.
    const ticks = [...output.matchAll(/\r\x1b\[2K(?:\x1b\[[0-9;]*m)*Waiting for approval… (\d+):(\d\d) left \(Ctrl-C to cancel\)/g)]
      .map((m) => Number(m[1]) * 60 + Number(m[2]))
    expect(ticks.length, output).toBeGreaterThanOrEqual(3)
    expect(ticks[0]).toBe(900)
    expect(ticks[1]).toBe(899)
    for (let i = 1; i < ticks.length; i++) expect(ticks[i]!).toBeLessThan(ticks[i - 1]!)
    expect(new Set(ticks).size).toBe(ticks.length)

    // The countdown line is cleared, then the success line, last.
    expect(output).toMatch(
      new RegExp(`\\r\\x1b\\[2K(?:\\x1b\\[[0-9;]*m)*✓(?:\\x1b\\[[0-9;]*m)* Logged in to Kimi\\. Tokens saved to ${reEscape(tokenFile())}\\r\\n$`)
    )

    // Approved after ~3.5 s, polled once a second, and the tokens are on disk.
    expect(tokenPolls()).toBeGreaterThanOrEqual(3)
    expect(emulator.stats().deviceGrants).toBe(1)
    expect(fs.statSync(tokenFile()).mode & 0o777).toBe(0o600)
    const stored = readTokenFile()
    expect(stored["access_token"]).toMatch(/^emu_at_/)
    expect(stored["refresh_token"]).toMatch(/^emu_rt_/)
    expect(output).not.toContain(stored["access_token"])
    expect(output).not.toContain(device!.deviceCode)
  })

  it("Ctrl-C while waiting: exit 130, the countdown line cleared, no trace, nothing stored, no poll afterwards", async () => {
    emulator = await start({ interval: 1 })
    const run = runInPty(["login", "--no-browser"], userEnv(), { timeoutMs: 20_000 })
    await run.waitFor((o) => o.includes("left (Ctrl-C to cancel)"))
    const deadline = Date.now() + 10_000
    while (tokenPolls() < 1 && Date.now() < deadline) await sleep(20)
    expect(tokenPolls()).toBeGreaterThanOrEqual(1)

    const typedAt = Date.now()
    run.type("\x03")
    const { code, output } = await run.exited
    expect(Date.now() - typedAt).toBeLessThan(3000)
    expect(code, output).toBe(130)
    expect(output).not.toMatch(NO_TRACE)
    expect(output).not.toMatch(/error/i)

    // After the last countdown frame: at most the terminal's echo of ^C, the line cleared, then one line that says it was cancelled.
    const tail = output.slice(output.lastIndexOf("left (Ctrl-C to cancel)") + "left (Ctrl-C to cancel)".length)
    expect(tail).toMatch(/^(?:\x1b\[[0-9;]*m)*(?:\^C)?\r\x1b\[2KLogin cancelled; nothing was stored\.\r\n$/)

    expect(fs.existsSync(tokenFile())).toBe(false)
    const polls = tokenPolls()
    await sleep(2500) // more than two intervals
    expect(tokenPolls()).toBe(polls)
    expect(emulator.deviceCodes()[0]!.status).toBe("pending")
  })
})

// ---------------------------------------------------------------------------

/** Nothing that only makes sense on a terminal. */
const expectPlain = (text: string) => {
  expect(text).not.toMatch(/\x1b/) // no escape sequence at all
  expect(text).not.toMatch(/\r/) // no carriage return: no countdown
  expect(text).not.toMatch(/[▀▄█]/) // no QR code
  expect(text).not.toMatch(/[╭╮╰╯│─]/) // no box
}

describe("kimi-auth piped (not a terminal)", () => {
  it("login: plain lines a script can parse, the link on an Open: line, the code on a Code: line", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 500 })
    const r = await runCli(["login", "--no-browser"], userEnv())
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    expectPlain(r.stdout)

    const userCode = emulator.deviceCodes()[0]!.userCode
    const lines = r.stdout.split("\n")
    const open = lines.map((l) => /^\s*Open:\s+(\S+)$/.exec(l)?.[1]).filter((x) => x !== undefined)
    const code = lines.map((l) => /^\s*Code:\s+(\S+)$/.exec(l)?.[1]).filter((x) => x !== undefined)
    expect(open).toEqual([`${emulator.url}/device?user_code=${userCode}`])
    expect(code).toEqual([userCode])
    expect(lines.filter((l) => l === "Waiting for approval…")).toHaveLength(1)
    expect(r.stdout.endsWith(`✓ Logged in to Kimi. Tokens saved to ${tokenFile()}\n`)).toBe(true)
  })

  it("login --json: every stdout line is JSON, a code event then a logged_in event", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 500 })
    const r = await runCli(["login", "--no-browser", "--json"], userEnv())
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toBe("")
    expectPlain(r.stdout)
    expect(r.stdout.endsWith("\n")).toBe(true)
    const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
    const device = emulator.deviceCodes()[0]!
    expect(events).toHaveLength(2)
    expect(events[0]).toEqual({
      event: "code",
      verification_uri: `${emulator.url}/device`,
      verification_uri_complete: `${emulator.url}/device?user_code=${device.userCode}`,
      user_code: device.userCode,
      expires_in: 900,
      interval: 1,
      replaces_login: false
    })
    expect(events[1]).toEqual({
      event: "logged_in",
      token_file: tokenFile(),
      expires_at: readTokenFile()["expires_at"],
      region: "mainland-cn",
      replaced_login: false,
      oauth_host: emulator.oauthHost,
      api_base_url: "https://api.kimi.com/coding/v1"
    })
    expect(r.stdout).not.toContain(device.deviceCode)
  })

  it("login --json refused: a code event, then an error event with the exit code; exit 3", async () => {
    emulator = await start({ interval: 1 })
    const r = await runCli(["login", "--no-browser", "--json"], userEnv(), {
      onSpawn: () => {
        const timer = setInterval(() => {
          const pending = emulator?.deviceCodes()[0]
          if (pending) {
            clearInterval(timer)
            emulator!.deny(pending.userCode)
          }
        }, 20)
      }
    })
    expect(r.code).toBe(3)
    expectPlain(r.stdout)
    const events = r.stdout.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
    expect(events.map((e) => e["event"])).toEqual(["code", "error"])
    expect(events[1]).toMatchObject({ event: "error", error: "AccessDeniedError", exit_code: 3 })
    expect(events[1]!["message"]).toMatch(/refused/)
    expect(fs.existsSync(tokenFile())).toBe(false)
  })

  it("status and status --json, logged out (exit 7) and logged in (exit 0), never a secret", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 500 })
    const env = userEnv()

    const out = await runCli(["status", "--json"], env)
    expect(out.code).toBe(7)
    expect(out.stderr).toBe("")
    const loggedOut = JSON.parse(out.stdout)
    expect(loggedOut).toMatchObject({ logged_in: false, token_file: tokenFile(), oauth_host: emulator.oauthHost })
    // Reading the status creates nothing: no device id until the first login saves one (issue 9).
    expect(loggedOut.device_id).toBe("")
    expect(out.stdout.trimEnd().split("\n")).toHaveLength(1)

    expect((await runCli(["login", "--no-browser"], env)).code).toBe(0)
    const stored = readTokenFile()

    const json = await runCli(["status", "--json"], env)
    expect(json.code).toBe(0)
    expect(json.stderr).toBe("")
    expect(json.stdout.trimEnd().split("\n")).toHaveLength(1)
    const s = JSON.parse(json.stdout)
    expect(s).toMatchObject({
      logged_in: true,
      expires_at: stored["expires_at"],
      access_token_expired: false,
      refresh_due: false,
      scope: "kimi-code",
      token_file: tokenFile(),
      device_id: stored["device_id"],
      oauth_host: emulator.oauthHost
    })
    expect(s.expires_in_seconds).toBeGreaterThan(890)
    expect(s.expires_in_seconds).toBeLessThanOrEqual(900)

    const text = await runCli(["status"], env)
    expect(text.code).toBe(0)
    expectPlain(text.stdout)
    expect(text.stdout).toMatch(/^✓ Logged in to Kimi\.\n/)
    for (const r of [json, text]) {
      expect(r.stdout).not.toContain(stored["access_token"])
      expect(r.stdout).not.toContain(stored["refresh_token"])
    }
  })
})

// ---------------------------------------------------------------------------

describe("--debug and DEBUG=opencode-kimi-auth:*", () => {
  it("debug lines go to stderr only, and no token or device code issued by the emulator ever appears", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 1500 })
    const env = userEnv()
    const runs: Array<{ readonly name: string; readonly r: CliResult }> = []
    const cli = async (name: string, args: ReadonlyArray<string>, extra: Record<string, string> = {}) => {
      const r = await runCli(args, { ...env, ...extra })
      runs.push({ name, r })
      return r
    }
    const debugLines = (r: CliResult) => r.stderr.split("\n").filter((l) => /\bDEBUG\b/.test(l))

    // login
    const login = await cli("login --debug", ["login", "--no-browser", "--debug"])
    expect(login.code, login.stderr).toBe(0)
    expect(login.stdout).not.toMatch(/DEBUG/)
    expect(debugLines(login).join("\n")).toMatch(/login: device authorization: user code [A-Z]{4}-[A-Z]{4}/)
    expect(debugLines(login).join("\n")).toMatch(/login: poll 1: Pending/)
    expect(debugLines(login).join("\n")).toMatch(/login: approved/)
    const first = readTokenFile()

    // status
    const status = await cli("status --debug", ["status", "--debug"])
    expect(status.code).toBe(0)
    expect(status.stdout).not.toMatch(/DEBUG/)
    expect(debugLines(status).join("\n")).toMatch(/status: read .*oauth\.json: access token valid until/)

    // the same commands without debugging print nothing on stderr
    const quiet = await cli("status", ["status"], { DEBUG: "some-other-package:*" })
    expect(quiet.stderr).toBe("")

    // refresh: the server expires every access token and the file says it is expired
    emulator.expireAccessTokens()
    fs.writeFileSync(tokenFile(), JSON.stringify({ ...first, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    const refresh = await cli("token --debug", ["token", "--debug"])
    expect(refresh.code, refresh.stderr).toBe(0)
    const second = readTokenFile()
    expect(second["access_token"]).not.toBe(first["access_token"])
    expect(second["refresh_token"]).not.toBe(first["refresh_token"])
    expect(refresh.stdout).toBe(`${second["access_token"]}\n`) // exactly the token, nothing else
    expect(debugLines(refresh).join("\n")).toMatch(/token: the stored access token expired \d+ s ago/)
    expect(debugLines(refresh).join("\n")).toMatch(/token: refreshed; .*the refresh token was rotated/)
    expect(emulator.stats().refreshes).toBe(1)

    // DEBUG from the environment, no flag
    const fromEnv = await cli("DEBUG token", ["token"], { DEBUG: "opencode-kimi-auth:*" })
    expect(fromEnv.code).toBe(0)
    expect(fromEnv.stdout).toBe(`${second["access_token"]}\n`)
    expect(debugLines(fromEnv).join("\n")).toMatch(/token: the stored access token is still valid; no request was made/)
    const fromList = await cli("DEBUG=a,b token", ["token"], { DEBUG: "express:* opencode-kimi-auth" })
    expect(debugLines(fromList).length).toBeGreaterThan(0)

    // logout
    const logout = await cli("logout (DEBUG)", ["logout"], { DEBUG: "opencode-kimi-auth:*" })
    expect(logout.code).toBe(0)
    expect(logout.stdout).not.toMatch(/DEBUG/)
    expect(debugLines(logout).join("\n")).toMatch(/logout: removed .*oauth\.json/)

    // a failure still explains itself, and says which exit code it chose
    const notLoggedIn = await cli("token --debug (logged out)", ["token", "--debug"])
    expect(notLoggedIn.code).toBe(7)
    expect(notLoggedIn.stdout).toBe("")
    expect(debugLines(notLoggedIn).join("\n")).toMatch(/failed with NotLoggedInError; exit code 7/)

    // Every secret the emulator handed out or was sent: both token pairs, the device code, whatever was polled or refreshed with.
    const secrets = new Set<string>()
    for (const t of [first, second]) {
      secrets.add(String(t["access_token"]))
      secrets.add(String(t["refresh_token"]))
    }
    for (const d of emulator.deviceCodes()) secrets.add(d.deviceCode)
    for (const req of emulator.requests()) {
      for (const k of ["device_code", "refresh_token"]) if (req.form?.[k]) secrets.add(req.form[k])
      if (req.bearer) secrets.add(req.bearer)
    }
    expect(secrets.size).toBeGreaterThanOrEqual(5)
    // Also the random part alone (without the emu_xx_ prefix), in case a log trims or re-encodes the prefix.
    const needles = [...secrets].flatMap((s) => [s, s.replace(/^emu_[a-z]+_/, "")])
    for (const { name, r } of runs) {
      for (const needle of needles) {
        expect(r.stderr.includes(needle), `${name}: a secret on stderr:\n${r.stderr}`).toBe(false)
        const allowed = ["token --debug", "DEBUG token", "DEBUG=a,b token"].includes(name) &&
          r.stdout === `${second["access_token"]}\n`
        if (!allowed) expect(r.stdout.includes(needle), `${name}: a secret on stdout:\n${r.stdout}`).toBe(false)
      }
      expectPlain(r.stderr)
    }
  })
})

/** A string as a literal inside a RegExp. */
function reEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")
}
