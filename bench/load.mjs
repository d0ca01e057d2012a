// Plugin load: cold start of a Bun process that imports a plugin entry and
// calls it as OpenCode does, side by side with opencode-anthropic-auth (the
// anchor) and an empty script, interleaved round by round.
import * as fs from "node:fs"
import * as path from "node:path"
import { anthropicEntry, benchDir, bunPath, cleanEnv, fmt, median, repoRoot, run, tempDir } from "./lib.mjs"

const loadDir = path.join(benchDir, "load")

export const runLoad = async ({ rounds = 30 } = {}) => {
  const storage = tempDir("kimi-bench-load-")
  const env = cleanEnv({ OPENCODE_KIMI_AUTH_DIR: path.join(storage, "store"), HOME: storage })
  const cases = [
    { name: "empty", args: [path.join(loadDir, "empty.mjs")] },
    { name: "anthropic", args: [path.join(loadDir, "anthropic.mjs"), anthropicEntry] },
    // exports["./server"], the entry OpenCode loads (package self-reference).
    { name: "kimi", args: [path.join(loadDir, "kimi.mjs"), "opencode-kimi-auth/server", "server"] },
    { name: "kimi-import", args: [path.join(loadDir, "kimi.mjs"), "opencode-kimi-auth/server", "import"] },
    { name: "kimi-config", args: [path.join(loadDir, "kimi.mjs"), "opencode-kimi-auth/server", "config"] },
    { name: "kimi-unbundled", args: [path.join(loadDir, "kimi.mjs"), path.join(repoRoot, "dist", "opencode", "server.js"), "server"] }
  ]
  const times = Object.fromEntries(cases.map((c) => [c.name, []]))
  const rss = Object.fromEntries(cases.map((c) => [c.name, []]))
  const ratios = { kimi: [], "kimi-import": [], "kimi-config": [], "kimi-unbundled": [], empty: [] }
  // Warm the file cache once per case (cold start = a new process, not a cold disk).
  for (const c of cases) await run(bunPath, c.args, { env, timeoutMs: 30_000 })
  for (let r = 0; r < rounds; r++) {
    const round = {}
    // Rotate the order each round so no case always runs right after another.
    const order = cases.map((_, i) => cases[(i + r) % cases.length])
    for (const c of order) {
      const res = await run(bunPath, c.args, { env, timeoutMs: 30_000 })
      if (res.code !== 0) throw new Error(`load case ${c.name} failed (${res.code}):\n${res.stdout}\n${res.stderr}`)
      const { maxRSS } = JSON.parse(res.stdout.trim().split("\n").pop())
      times[c.name].push(res.millis)
      rss[c.name].push(maxRSS / 1024)
      round[c.name] = res.millis
    }
    for (const k of Object.keys(ratios)) ratios[k].push(round[k] / round.anthropic)
  }
  fs.rmSync(storage, { recursive: true, force: true })
  const summary = Object.fromEntries(cases.map((c) => [c.name, { medianMillis: median(times[c.name]), medianMaxRssMiB: median(rss[c.name]) }]))
  const result = {
    rounds,
    cases: summary,
    ratioToAnchor: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, median(v)])),
    rssDeltaMiB: {
      kimi: summary.kimi.medianMaxRssMiB - summary.anthropic.medianMaxRssMiB,
      "kimi-config": summary["kimi-config"].medianMaxRssMiB - summary.anthropic.medianMaxRssMiB,
      "kimi-unbundled": summary["kimi-unbundled"].medianMaxRssMiB - summary.anthropic.medianMaxRssMiB
    }
  }
  const line = (name, label) =>
    console.log(
      `load ${label}: ratio to opencode-anthropic-auth ${fmt(result.ratioToAnchor[name])}x ` +
        `(median of ${rounds} interleaved rounds; ${fmt(summary[name].medianMillis, 0)} ms vs ${fmt(summary.anthropic.medianMillis, 0)} ms; ` +
        `peak RSS ${fmt(summary[name].medianMaxRssMiB, 1)} MiB vs ${fmt(summary.anthropic.medianMaxRssMiB, 1)} MiB)`
    )
  console.log(
    `startup (import + server() + config): ratio to opencode-anthropic-auth (import + plugin()) ${fmt(result.ratioToAnchor["kimi-config"])}x ` +
      `(median of ${rounds} interleaved rounds; ${fmt(summary["kimi-config"].medianMillis, 0)} ms vs ${fmt(summary.anthropic.medianMillis, 0)} ms; ` +
      `peak RSS ${fmt(summary["kimi-config"].medianMaxRssMiB, 1)} MiB, ${result.rssDeltaMiB["kimi-config"] >= 0 ? "+" : ""}${fmt(result.rssDeltaMiB["kimi-config"], 1)} MiB over the anchor); goal <= 1.30x and <= +8 MiB`
  )
  line("kimi", "(import + server(), bundle)")
  line("kimi-import", "(import only, bundle)")
  line("kimi-config", "(import + server() + config hook, bundle)")
  line("kimi-unbundled", "(import + server(), unbundled tsc output dist/opencode/KimiPlugin.js)")
  console.log(
    `load empty script: ratio ${fmt(result.ratioToAnchor.empty)}x (${fmt(summary.empty.medianMillis, 0)} ms, ${fmt(summary.empty.medianMaxRssMiB, 1)} MiB); ` +
      `goal: load ratio <= 2.00x, peak memory within 10 MiB of the anchor (kimi: ${fmt(result.rssDeltaMiB.kimi, 1)} MiB)`
  )
  return result
}
