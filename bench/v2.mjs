// OpenCode 2: start-up of the V2 entry (import + setup) beside V1's (import + server() + config),
// cold Bun processes interleaved round by round; and the cost of the V2 request-hook path
// (http.request + http.response around each send) against plain fetch with the same headers.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { benchDir, bunPath, cleanEnv, fmt, median, nowSeconds, run, tempDir, writeTokenFile } from "./lib.mjs"

const startServer = () =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(benchDir, "overhead-server.mjs")], { stdio: ["pipe", "pipe", "inherit"] })
    child.stdout.setEncoding("utf8").once("data", (d) => resolve({ url: d.trim(), close: () => child.stdin.end() }))
    child.once("error", reject)
  })

export const runV2 = async ({ rounds = 15, requests = 1000, runs = 5, block = 100 } = {}) => {
  const home = tempDir("kimi-bench-v2-")
  const storage = path.join(home, "store")
  writeTokenFile(storage, { access: "bench-access-token-valid", refresh: "bench-refresh-token", expiresAt: nowSeconds() + 3600, expiresIn: 3600 })
  const server = await startServer()
  const env = cleanEnv({ HOME: home, OPENCODE_KIMI_AUTH_DIR: storage, KIMI_CODE_BASE_URL: `${server.url}/coding/v1` })
  const loadDir = path.join(benchDir, "load")
  const cases = [
    { name: "v1", args: [path.join(loadDir, "kimi.mjs"), path.join(process.cwd(), "dist", "bundle", "server.js"), "config"] },
    { name: "v2", args: [path.join(loadDir, "kimi-v2.mjs"), "opencode-kimi-auth/server", "setup"] }
  ]
  const times = { v1: [], v2: [] }
  const result = { rounds }
  try {
    for (const c of cases) await run(bunPath, c.args, { env, timeoutMs: 30_000 })
    for (let r = 0; r < rounds; r++) {
      for (const c of r % 2 === 0 ? cases : [...cases].reverse()) {
        const res = await run(bunPath, c.args, { env, timeoutMs: 30_000 })
        if (res.code !== 0) throw new Error(`v2 load case ${c.name} failed (${res.code}):\n${res.stdout}\n${res.stderr}`)
        times[c.name].push(res.millis)
      }
    }
    result.startup = { v1MedianMillis: median(times.v1), v2MedianMillis: median(times.v2), ratio: median(times.v2) / median(times.v1) }
    console.log(
      `startup V2 (import + setup, Bun resolving the bun condition) vs V1 (import + server() + config): ` +
        `${fmt(result.startup.v2MedianMillis, 0)} ms vs ${fmt(result.startup.v1MedianMillis, 0)} ms, ratio ${fmt(result.startup.ratio)}x (median of ${rounds} interleaved cold Bun starts)`
    )
    const res = await run(bunPath, [path.join(benchDir, "overhead-v2-client.mjs"), `${server.url}/coding/v1/chat/completions`, String(requests), String(runs), String(block)], { env, timeoutMs: 300_000 })
    if (res.code !== 0) throw new Error(`v2 overhead client failed:\n${res.stdout}\n${res.stderr}`)
    const out = JSON.parse(res.stdout.trim().split("\n").pop())
    result.overhead = {
      requests,
      runs,
      ratio: median(out.runs.map((x) => x.ratio)),
      plainMicrosPerRequest: (median(out.runs.map((x) => x.plainMillis)) / requests) * 1000,
      hooksMicrosPerRequest: (median(out.runs.map((x) => x.hooksMillis)) / requests) * 1000,
      ratios: out.runs.map((x) => Number(x.ratio.toFixed(3)))
    }
    const o = result.overhead
    console.log(
      `overhead V2 hooks (http.request + http.response) vs plain fetch with the same headers and body, ${requests} sequential requests under Bun: ` +
        `ratio ${fmt(o.ratio)}x (median of ${runs} interleaved runs [${o.ratios.map((x) => fmt(x)).join(", ")}]; ` +
        `${fmt(o.hooksMicrosPerRequest, 0)} µs vs ${fmt(o.plainMicrosPerRequest, 0)} µs per request)`
    )
  } finally {
    server.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
  return result
}
