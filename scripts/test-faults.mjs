#!/usr/bin/env node
// npm run test:faults: runs the fault suite (vitest.faults.config.ts), then
// scans everything it printed, plus every output its tests collected (child
// processes' stdout/stderr, error messages, and the whole default test suite
// run by test/faults/secretScan.fault.ts), for token values: the emulator's
// tokens (emu_at_…, emu_rt_…, emu_dc_…) and the canaries the fault tests
// plant. Fails on any failed test or any hit.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-faults-logs-"))
// Kept in sync with test/faults/support.ts.
const patterns = [/emu_(?:at|rt|dc)_[A-Za-z0-9_-]{32}/g, /kimicanary[a-z]*x[0-9a-f]{24}/g]

const vitest = path.join(root, "node_modules", "vitest", "vitest.mjs")
const child = spawn(process.execPath, [vitest, "run", "--config", "vitest.faults.config.ts", ...process.argv.slice(2)], {
  cwd: root,
  env: { ...process.env, KIMI_FAULTS_LOG_DIR: logDir },
  stdio: ["ignore", "pipe", "pipe"]
})
let own = ""
child.stdout.on("data", (c) => {
  own += c
  process.stdout.write(c)
})
child.stderr.on("data", (c) => {
  own += c
  process.stderr.write(c)
})
const code = await new Promise((resolve) => child.on("close", (c, s) => resolve(c ?? (s ? 1 : 0))))

const sources = [["fault suite output", own]]
for (const f of fs.readdirSync(logDir).sort()) sources.push([f, fs.readFileSync(path.join(logDir, f), "utf8")])
let hits = 0
let bytes = 0
for (const [name, text] of sources) {
  bytes += text.length
  for (const p of patterns) {
    for (const m of text.matchAll(p)) {
      hits++
      // Never print the value itself: only where, and a fingerprint-free hint of its kind.
      console.error(`secret scan: a token value (${m[0].slice(0, 7)}…) in ${name} at offset ${m.index}`)
    }
  }
}
console.log(`secret scan: ${hits} token values found in ${sources.length} outputs (${(bytes / 1024).toFixed(0)} KiB scanned: this run's output, child processes, the default suite)`)
fs.rmSync(logDir, { recursive: true, force: true })
process.exit(code !== 0 ? code : hits > 0 ? 1 : 0)
