#!/usr/bin/env node
// npm run bench: every benchmark of issue #6, side by side in one run.
// Usage: node bench/run.mjs [install] [cli] [load] [overhead] [v2] [v21] [storm] [polling] [versus] [--quick]
// Writes bench/results/latest.json; BENCHMARKS.md quotes it.
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { benchDir, ensureFixture, machine, repoRoot } from "./lib.mjs"

const args = process.argv.slice(2)
const quick = args.includes("--quick")
const wanted = args.filter((a) => !a.startsWith("--"))
const all = ["install", "cli", "load", "overhead", "v2", "v21", "storm", "polling", "versus"]
const sections = wanted.length > 0 ? wanted : all

if (!fs.existsSync(path.join(repoRoot, "dist", "bundle", "server.js"))) {
  console.error("dist/bundle/server.js is missing: run `npm run build` first (npm run bench does).")
  process.exit(2)
}
ensureFixture()
const m = machine()
console.log(`machine: ${m.nproc} cores, ${m.cpu}, ${m.memGiB} GiB, node ${m.node}, bun ${m.bun}, ${m.platform}`)
const results = { date: new Date().toISOString(), command: `node bench/run.mjs ${args.join(" ")}`.trim(), machine: m }
const started = Date.now()
// The machine is shared: every section says how busy it was (1-minute load average / cores) before and after.
const loadAverage = () => `${os.loadavg()[0].toFixed(2)} on ${m.nproc} cores`
results.loadAverage = {}
for (const s of sections) {
  console.log(`\n== ${s} == (load average ${loadAverage()})`)
  const t = Date.now()
  const before = os.loadavg()[0]
  if (s === "install") results.install = await (await import("./install.mjs")).runInstall()
  else if (s === "cli") results.cli = await (await import("./cli.mjs")).runCli(quick ? { rounds: 8 } : {})
  else if (s === "load") results.load = await (await import("./load.mjs")).runLoad(quick ? { rounds: 8 } : {})
  else if (s === "overhead") results.overhead = await (await import("./overhead.mjs")).runOverhead(quick ? { runs: 3 } : {})
  else if (s === "v2") results.v2 = await (await import("./v2.mjs")).runV2(quick ? { rounds: 4, runs: 2 } : {})
  else if (s === "v21") results.v21 = await (await import("./v21.mjs")).runV21(quick ? { rounds: 4 } : {})
  else if (s === "storm") results.storm = await (await import("./storm.mjs")).runStorm(quick ? { runs: 2 } : {})
  else if (s === "polling") results.polling = await (await import("./polling.mjs")).runPolling(quick ? { quick } : {})
  else if (s === "versus") results.versus = await (await import("./versus.mjs")).runVersus(quick ? { rounds: 6 } : {})
  else throw new Error(`unknown section ${s}; choose from ${all.join(", ")}`)
  results.loadAverage[s] = { before, after: os.loadavg()[0] }
  console.log(`(${s}: ${((Date.now() - t) / 1000).toFixed(1)} s; load average ${loadAverage()})`)
}
console.log(`\nall done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
// Only a full run replaces the figures BENCHMARKS.md quotes; partial runs print only.
if (!quick && wanted.length === 0) {
  fs.mkdirSync(path.join(benchDir, "results"), { recursive: true })
  fs.writeFileSync(path.join(benchDir, "results", "latest.json"), JSON.stringify(results, null, 2) + "\n")
  console.log("figures written to bench/results/latest.json")
}
