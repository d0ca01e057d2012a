// CLI start: `kimi-auth token` with a fresh token on disk (what every
// `$(kimi-auth token)` in a shell script pays), `status` (what status lines in
// prompts run) and `--help`, each against `node -e 0`, the floor of any Node
// tool, interleaved round by round; the load average is printed beside them.
// All three are answered without loading Effect (src/cli/main.ts).
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cleanEnv, fmt, median, nowSeconds, repoRoot, run, tempDir, writeTokenFile } from "./lib.mjs"

const cli = path.join(repoRoot, "dist", "cli", "main.js")

export const runCli = async ({ rounds = 30 } = {}) => {
  const home = tempDir("kimi-bench-cli-")
  const storage = path.join(home, "store")
  writeTokenFile(storage, { access: "bench-access-token-valid", refresh: "bench-refresh-token", expiresAt: nowSeconds() + 3600, expiresIn: 3600 })
  fs.writeFileSync(path.join(storage, "device_id"), "11111111-2222-4333-8444-555555555555\n", { mode: 0o600 })
  const env = cleanEnv({ HOME: home, OPENCODE_KIMI_AUTH_DIR: storage })
  const cases = [
    { name: "node", args: ["-e", "0"] },
    { name: "token", args: [cli, "token"], expect: "bench-access-token-valid\n" },
    { name: "help", args: [cli, "--help"] },
    { name: "status", args: [cli, "status"] }
  ]
  const times = Object.fromEntries(cases.map((c) => [c.name, []]))
  const ratios = { token: [], help: [], status: [] }
  try {
    for (const c of cases) await run(process.execPath, c.args, { env })
    for (let r = 0; r < rounds; r++) {
      const round = {}
      for (const c of cases.map((_, i) => cases[(i + r) % cases.length])) {
        const res = await run(process.execPath, c.args, { env, timeoutMs: 30_000 })
        if (res.code !== 0 || (c.expect !== undefined && res.stdout !== c.expect)) {
          throw new Error(`cli case ${c.name} failed (${res.code}):\n${res.stderr}`)
        }
        times[c.name].push(res.millis)
        round[c.name] = res.millis
      }
      for (const k of Object.keys(ratios)) ratios[k].push(round[k] / round.node)
    }
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
  const load = os.loadavg().map((l) => fmt(l)).join(" ")
  const result = {
    load: os.loadavg(),
    rounds,
    medianMillis: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])),
    ratioToNode: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, median(v)]))
  }
  const line = (name, label) =>
    `cli ${label}: ${fmt(result.ratioToNode[name])}x node -e 0 (${fmt(result.medianMillis[name], 0)} ms)`
  console.log(
    `cli start, ratio to node -e 0 (${fmt(result.medianMillis.node, 0)} ms), median of ${rounds} interleaved rounds, ` +
      `load average ${load}; goal <= 1.30x`
  )
  console.log(`  ${line("token", "token (fresh token on disk)")}`)
  console.log(`  ${line("status", "status (logged in)")}`)
  console.log(`  ${line("help", "--help")}`)
  return result
}
