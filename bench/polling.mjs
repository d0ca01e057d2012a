// Polling accuracy: a real device login (KimiOAuthClient) against the
// emulator, which approves the code `approveAfter` ms after issuing it and
// answers `slow_down` to any poll earlier than the interval allows. The ideal
// client polls exactly every interval from issuance: ceil(approveAfter / interval)
// polls. Goal: no slow_down ever, at most one poll over the ideal.
import * as fs from "node:fs"
import * as path from "node:path"
import { fmt, repoRoot, tempDir } from "./lib.mjs"

const { start } = await import(path.join(repoRoot, "dist", "emulator", "KimiEmulator.js"))
const lib = await import(path.join(repoRoot, "dist", "index.js"))

const oneLogin = async (intervalSeconds, approveAfterMillis) => {
  const emu = await start({ interval: intervalSeconds, autoApproveAfterMillis: approveAfterMillis })
  const home = tempDir("kimi-bench-poll-")
  try {
    const client = new lib.KimiOAuthClient({ storageDir: path.join(home, "store"), oauthHost: emu.url })
    const t = performance.now()
    const session = await client.authorize({ signal: AbortSignal.timeout(60_000) })
    await session.waitForCompletion()
    const millis = performance.now() - t
    await client.dispose()
    const s = emu.stats()
    const polls = emu.requests("/api/oauth/token").filter((r) => r.form?.grant_type?.endsWith("device_code"))
    const issuedAt = emu.requests("/api/oauth/device_authorization")[0]?.at ?? 0
    const last = polls.at(-1)?.at ?? 0
    return {
      intervalSeconds,
      approveAfterMillis,
      polls: polls.length,
      ideal: Math.max(1, Math.ceil(approveAfterMillis / (intervalSeconds * 1000))),
      slowDowns: s.slowDowns,
      // How long after the approval the successful poll arrived.
      detectMillis: last - issuedAt - approveAfterMillis,
      loginMillis: millis,
      gaps: polls.map((p, i) => (i === 0 ? p.at - issuedAt : p.at - polls[i - 1].at))
    }
  } finally {
    await emu.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

export const runPolling = async ({ quick = false } = {}) => {
  const cases = quick ? [[1, 2500], [2, 5000]] : [[1, 2500], [1, 4500], [1, 7300], [2, 5000], [3, 7000]]
  const results = []
  // Two logins at a time: they wait most of the time, and the machine has 2 cores.
  for (let i = 0; i < cases.length; i += 2) {
    results.push(...await Promise.all(cases.slice(i, i + 2).map(([s, a]) => oneLogin(s, a))))
  }
  for (const r of results) {
    console.log(
      `polling interval ${r.intervalSeconds} s, approved after ${r.approveAfterMillis} ms: ${r.polls} polls (ideal ${r.ideal}, extra ${r.polls - r.ideal}), ` +
        `slow_down ${r.slowDowns}, tokens ${fmt(r.detectMillis, 0)} ms after approval; poll gaps ${r.gaps.map((g) => fmt(g, 0)).join("/")} ms`
    )
  }
  const worstExtra = Math.max(...results.map((r) => r.polls - r.ideal))
  const slowDowns = results.reduce((a, r) => a + r.slowDowns, 0)
  console.log(`polling: max extra polls ${worstExtra}, slow_down provoked ${slowDowns} times; goal: 0 slow_down, at most 1 extra poll`)
  return { cases: results, worstExtra, slowDowns }
}
