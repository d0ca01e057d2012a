/**
 * Ctrl-C and SIGTERM while a refresh is in flight, as real child processes
 * against a loopback token endpoint that rotates on receipt and answers
 * slowly: the refresh finishes and its tokens are saved before the process
 * exits (130 for SIGINT, 143 for SIGTERM), so the next run is still logged in.
 * A second signal exits at once and says on stderr that the login may be lost.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { type SlowRotatingServer, startSlowRotatingServer } from "../support/slowRotatingServer.js"
import { seedExpiredLogin } from "../support/tokens.js"
import { start } from "../../src/emulator/KimiEmulator.js"

let home: string
let server: SlowRotatingServer | undefined

beforeEach(() => {
  home = makeTemp()
})
afterEach(async () => {
  server?.release()
  await server?.close()
  server = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const now = () => Math.floor(Date.now() / 1000)

/** An expired token set on disk, so `token` must refresh. */
const seedExpired = () => seedExpiredLogin(tokenFile())

/** Runs `kimi-auth token`, sends `signals` (with `gapMs` between them) once its refresh request has reached the server. */
const signalMidFlight = async (signals: ReadonlyArray<NodeJS.Signals>, gapMs = 0) => {
  const s = server!
  const arrival = s.nextArrival()
  const env = isolatedEnv(home, { KIMI_OAUTH_HOST: s.url })
  let sentAt = 0
  const result = await runCli(["token"], env, {
    timeoutMs: 45_000,
    onSpawn: (child) =>
      void arrival.then(async () => {
        sentAt = Date.now()
        for (const [i, sig] of signals.entries()) {
          if (i > 0) await new Promise((r) => setTimeout(r, gapMs))
          child.kill(sig)
        }
      })
  })
  return { ...result, elapsedMs: Date.now() - sentAt }
}

describe("kimi-auth token: a signal while the refresh is in flight", () => {
  it("SIGINT: waits for the answer, saves the rotated tokens, exits 130; the next run is still logged in", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: 1500 })
    seedExpired()
    const r = await signalMidFlight(["SIGINT"])
    expect(r.code, r.stderr).toBe(130)
    expect(r.elapsedMs).toBeGreaterThanOrEqual(1000)
    expect(r.stderr).toContain("finishing the token refresh in flight")
    expect(r.stdout).not.toContain("at-1")
    const stored = JSON.parse(fs.readFileSync(tokenFile(), "utf8"))
    expect(stored.refresh_token).toBe("rt-1")
    expect(fs.existsSync(path.join(storage(), "oauth.json.refreshing"))).toBe(false)

    // The next run is logged in: a valid token, no request needed; a forced refresh later uses the live rt-1.
    const next = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(next.code, next.stderr).toBe(0)
    expect(next.stdout).toBe("at-1\n")
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
  })

  it("SIGTERM: the same, with exit code 143", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: 1500 })
    seedExpired()
    const r = await signalMidFlight(["SIGTERM"])
    expect(r.code, r.stderr).toBe(143)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
    const next = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }))
    expect(next.code, next.stderr).toBe(0)
    expect(next.stdout).toBe("at-1\n")
  })

  it("a second signal exits at once and says the login may be lost", async () => {
    // The answer is held until released: only the second signal can end the process before it.
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: Infinity })
    seedExpired()
    const r = await signalMidFlight(["SIGINT", "SIGINT"], 500)
    expect(r.code, r.stderr).toBe(130)
    expect(r.stderr).toContain("stopped at once by a second SIGINT")
    expect(r.stderr).toContain("login is lost")
    expect(r.stderr).not.toMatch(/\n\s+at /)
    // It did not wait for the answer (held forever); what it cost: the file still holds the spent rt-0.
    expect(r.elapsedMs).toBeLessThan(10_000)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-0")
  })
})

describe("kimi-auth token: a signal while a late refresh answer is awaited", () => {
  it("one SIGTERM waits at most the 10 s shutdown budget (not the request timeout, nor the long answer bound), says so, and keeps the marker", async () => {
    // The answer never comes: before, the process waited the 30 s request timeout; a running one would wait 5 minutes.
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: Infinity })
    seedExpired()
    const r = await signalMidFlight(["SIGTERM"])
    expect(r.code, r.stderr).toBe(143)
    expect(r.elapsedMs).toBeGreaterThanOrEqual(9_000)
    expect(r.elapsedMs).toBeLessThan(20_000)
    expect(r.stderr).toContain("(at most 10 s)")
    expect(r.stderr).toContain("after waiting 10 s for the token refresh in flight; its outcome is unknown")
    expect(r.stderr).not.toMatch(/\n\s+at /)
    // Nothing came back: the file is whole and unchanged, and the marker tells the next run what happened.
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-0")
    expect(fs.existsSync(path.join(storage(), "oauth.json.refreshing"))).toBe(true)
    expect(server.stats.refreshes).toBe(1)
  }, 60_000)
})

describe("kimi-auth login: a signal while waiting for approval (nothing in flight)", () => {
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    it(`${signal} exits ${code} at once, saying the login was cancelled`, async () => {
      const emulator = await start({ interval: 1 })
      try {
        let sentAt = 0
        const r = await runCli(["login", "--no-browser"], isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost }), {
          onSpawn: (child) => {
            let out = ""
            child.stdout?.on("data", (c: Buffer) => {
              out += c.toString()
              if (sentAt === 0 && out.includes("Waiting for approval")) {
                sentAt = Date.now()
                child.kill(signal)
              }
            })
          }
        })
        expect(r.code, r.stderr).toBe(code)
        expect(Date.now() - sentAt).toBeLessThan(5_000)
        expect(r.stderr).toContain("Login cancelled; nothing was stored.")
        expect(r.stderr).not.toContain("finishing the token refresh")
        expect(fs.existsSync(tokenFile())).toBe(false)
      } finally {
        await emulator.close()
      }
    })
  }
})
