/**
 * SIGINT and SIGTERM spread over the in-flight window of a refresh: a real
 * `kimi-auth token` child with an expired token refreshes against a loopback
 * endpoint that rotates on receipt and answers after `WINDOW_MS`; the signal
 * lands anywhere from the moment the request arrives to just after the answer.
 * After each run the token file must hold the refresh token the server
 * considers live (else the login is lost) and the exit code must be 130
 * (SIGINT) or 143 (SIGTERM), or 0 (or killed by that signal, which a shell
 * reports as the same 130/143) when the signal came after the command had
 * finished. Counted as lost logins and wrong exit codes, both must be 0.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { startSlowRotatingServer } from "../support/slowRotatingServer.js"
import { seedExpiredLogin } from "../support/tokens.js"
import { record } from "./support.js"

const ITERATIONS = Math.max(40, Number(process.env["KIMI_AUTH_SIGNAL_ITERATIONS"] ?? 40))
const LANES = 2
const WINDOW_MS = 400

describe("signals during a refresh in flight", () => {
  it(`${ITERATIONS} signals (SIGINT and SIGTERM) over the in-flight window: 0 lost logins`, async () => {
    const stats = { runs: 0, sigint: 0, sigterm: 0, lost: 0, wrongExit: 0, waited: 0, finishedFirst: 0 }
    const lane = async (n: number) => {
      const home = makeTemp(`kimi-faults-signals-${n}-`)
      const server = await startSlowRotatingServer("rt-0", { answerAfterMs: WINDOW_MS })
      const storage = path.join(home, ".opencode-kimi-auth")
      const file = path.join(storage, "oauth.json")
      fs.mkdirSync(storage, { recursive: true, mode: 0o700 })
      try {
        for (let i = n; i < ITERATIONS; i += LANES) {
          const signal: NodeJS.Signals = i % 2 === 0 ? "SIGINT" : "SIGTERM"
          // Anywhere in the window, a little past its end too (the save after the answer).
          const delay = Math.floor(Math.random() * (WINDOW_MS + 60))
          seedExpiredLogin(file, { access: "at-x", refresh: server.live() })
          const arrival = server.nextArrival()
          const r = await runCli(["token"], isolatedEnv(home, { KIMI_OAUTH_HOST: server.url }), {
            timeoutMs: 30_000,
            onSpawn: (child) =>
              void arrival.then(() =>
                setTimeout(() => {
                  child.kill(signal)
                }, delay)
              )
          })
          record("signal-lane", r.stdout.replace(/at-\d+/g, "at-N") + r.stderr)
          stats.runs++
          stats[signal === "SIGINT" ? "sigint" : "sigterm"]++
          const expected = signal === "SIGINT" ? 130 : 143
          // A signal that lands after the command ended, while Node is exiting (its handlers already gone), ends it
          // by the default action: "killed by SIGINT/SIGTERM", which a shell reports as the same 130/143.
          if (r.code === 0 || (r.code === null && r.signal === signal)) stats.finishedFirst++
          else if (r.code !== expected) {
            stats.wrongExit++
            console.log(`fault signals: ${signal} after ${delay} ms: exit ${r.code} (signal ${r.signal}); stdout ${JSON.stringify(r.stdout.replace(/at-\d+/g, "at-N"))}; stderr ${JSON.stringify(r.stderr)}`)
          }
          if (r.stderr.includes("finishing the token refresh in flight")) stats.waited++
          const stored = JSON.parse(fs.readFileSync(file, "utf8")) as { refresh_token: string }
          if (stored.refresh_token !== server.live() || server.stats.revoked) stats.lost++
        }
      } finally {
        server.release()
        await server.close()
        rmTemp(home)
      }
    }
    await Promise.all(Array.from({ length: LANES }, (_, n) => lane(n)))
    const summary = `runs ${stats.runs} (SIGINT ${stats.sigint}, SIGTERM ${stats.sigterm}), lost logins ${stats.lost}, ` +
      `wrong exit codes ${stats.wrongExit}, finished before the signal ${stats.finishedFirst}, ` +
      `said it was finishing the refresh ${stats.waited}`
    console.log(`fault signals: ${summary}`)
    expect(stats.runs).toBeGreaterThanOrEqual(40)
    expect(stats.lost, summary).toBe(0)
    expect(stats.wrongExit, summary).toBe(0)
    // Most signals land inside the window, not after the command ended.
    expect(stats.finishedFirst, summary).toBeLessThan(stats.runs / 2)
  })
})
