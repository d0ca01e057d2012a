/**
 * A refresh answered late (issue 22), with the default timings (30 s request
 * timeout, 5-minute answer bound): real `kimi-auth token` processes, started
 * together with an expired login, against a loopback token endpoint that
 * rotates the refresh token on receipt and answers after 35 s, and (a second
 * lane, at the same time) after 90 s. One process sends the refresh; the
 * others wait on the lock. Counted: lost logins (the file does not hold the
 * refresh token the server considers live, or the server saw a spent token
 * again and revoked the family), replays, refreshes, failed processes and the
 * slowest process. Before the fix: the holder gave up at 30 s, the waiters
 * spent the refresh token again, and the next run exited 7.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { startSlowRotatingServer } from "../support/slowRotatingServer.js"
import { storageWithLogin } from "../support/tokens.js"
import { record } from "./support.js"

const PROCESSES = Math.max(2, Number(process.env["KIMI_LATE_REFRESH_PROCESSES"] ?? 4))
const DELAYS_MS = [35_000, 90_000]

interface LaneStats {
  readonly delayMs: number
  runs: number
  failed: number
  lost: number
  replays: number
  refreshes: number
  slowestMs: number
  nextRunOk: boolean
}

/** One lane: `PROCESSES` processes at once, the answer after `delayMs`, then one more run that must be logged in without a request. */
const lane = async (delayMs: number): Promise<LaneStats> => {
  const stats: LaneStats = { delayMs, runs: 0, failed: 0, lost: 0, replays: 0, refreshes: 0, slowestMs: 0, nextRunOk: false }
  const home = makeTemp(`kimi-faults-late-${delayMs}-`)
  const server = await startSlowRotatingServer("rt-0", { answerAfterMs: delayMs })
  // An expired login (at-0 / rt-0) in its own storage folder.
  const storage = storageWithLogin(`kimi-faults-late-store-${delayMs}-`, -60)
  const file = path.join(storage, "oauth.json")
  const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, OPENCODE_KIMI_AUTH_DIR: storage })
  try {
    const started = Date.now()
    const results = await Promise.all(Array.from({ length: PROCESSES }, () => runCli(["token"], env, { timeoutMs: delayMs + 120_000 })))
    for (const r of results) {
      record("late-refresh", r.stdout.replace(/at-\d+/g, "at-N") + r.stderr)
      stats.runs++
      if (r.code !== 0 || r.stdout !== "at-1\n") {
        stats.failed++
        console.log(`fault late refresh (${delayMs} ms): exit ${r.code}; stderr ${JSON.stringify(r.stderr)}`)
      }
    }
    stats.slowestMs = Date.now() - started
    const stored = JSON.parse(fs.readFileSync(file, "utf8")) as { refresh_token: string }
    if (stored.refresh_token !== server.live() || server.stats.revoked) stats.lost++
    stats.replays = server.stats.reuses
    stats.refreshes = server.stats.refreshes
    // The next run: logged in, from the file, no request.
    const next = await runCli(["token"], env, { timeoutMs: 30_000 })
    stats.nextRunOk = next.code === 0 && next.stdout === "at-1\n" && server.stats.refreshes === stats.refreshes
  } finally {
    server.release()
    await server.close()
    rmTemp(home)
    rmTemp(storage)
  }
  return stats
}

describe("a refresh answered late, with waiters", () => {
  it(`answers after ${DELAYS_MS.map((d) => `${d / 1000} s`).join(" and ")}, ${PROCESSES} processes each: 0 lost logins`, async () => {
    const lanes = await Promise.all(DELAYS_MS.map(lane))
    for (const s of lanes) {
      console.log(
        `fault late refresh: answer after ${s.delayMs / 1000} s, ${s.runs} processes: lost logins ${s.lost}, replays ${s.replays}, ` +
          `refreshes ${s.refreshes}, failed processes ${s.failed}, slowest ${Math.round(s.slowestMs / 1000)} s, next run logged in ${s.nextRunOk}`
      )
    }
    for (const s of lanes) {
      expect(s.lost).toBe(0)
      expect(s.replays).toBe(0)
      expect(s.refreshes).toBe(1)
      expect(s.failed).toBe(0)
      expect(s.nextRunOk).toBe(true)
    }
  }, 300_000)
})
