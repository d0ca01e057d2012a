// Request overhead: 2,000 sequential small requests to a loopback server
// through the plugin's fetch (valid token) against plain fetch, interleaved,
// under Bun (OpenCode's runtime) and Node, both through exports["./server"].
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

export const runOverhead = async ({ requests = 2000, runs = 7, block = 100 } = {}) => {
  const server = await startServer()
  const home = tempDir("kimi-bench-overhead-")
  const storage = path.join(home, "store")
  writeTokenFile(storage, { access: "bench-access-token-valid", refresh: "bench-refresh-token", expiresAt: nowSeconds() + 3600, expiresIn: 3600 })
  // The plugin authorizes only requests below its API base (a quota answer reads {base}/usages): point it at the server.
  const env = cleanEnv({ HOME: home, OPENCODE_KIMI_AUTH_DIR: storage, KIMI_CODE_BASE_URL: `${server.url}/coding/v1` })
  const runtimes = [
    // exports["./server"], the bundle OpenCode loads, in Bun (OpenCode's runtime) and in Node.
    { name: "bun", cmd: bunPath, spec: "opencode-kimi-auth/server" },
    { name: "node", cmd: process.execPath, spec: "opencode-kimi-auth/server" }
  ]
  const result = { requests, runs, block }
  try {
    for (const rt of runtimes) {
      const url = `${server.url}/coding/v1/chat/completions`
      const res = await run(rt.cmd, [path.join(benchDir, "overhead-client.mjs"), url, rt.spec, String(requests), String(runs), String(block)], { env, timeoutMs: 300_000 })
      if (res.code !== 0) throw new Error(`overhead client (${rt.name}) failed:\n${res.stdout}\n${res.stderr}`)
      const out = JSON.parse(res.stdout.trim().split("\n").pop())
      const r = {
        ratio: median(out.runs.map((x) => x.ratio)),
        plainMillisPerRequest: median(out.runs.map((x) => x.plainMillis)) / requests,
        pluginMillisPerRequest: median(out.runs.map((x) => x.pluginMillis)) / requests,
        sameHeadersMillisPerRequest: median(out.runs.map((x) => x.sameHeadersMillis)) / requests,
        sameHeadersRatio: median(out.runs.map((x) => x.sameHeadersRatio)),
        // The plugin's own cost: its fetch against plain fetch sending the very same headers.
        vsSameHeaders: median(out.runs.map((x) => x.pluginMillis / x.sameHeadersMillis)),
        ratios: out.runs.map((x) => Number(x.ratio.toFixed(3)))
      }
      result[rt.name] = r
      console.log(
        `overhead (${rt.name}): plugin fetch vs plain fetch, ${requests} sequential requests: ratio ${fmt(r.ratio)}x ` +
          `(median of ${runs} interleaved runs [${r.ratios.map((x) => fmt(x)).join(", ")}]; ` +
          `${fmt(r.pluginMillisPerRequest * 1000, 0)} µs vs ${fmt(r.plainMillisPerRequest * 1000, 0)} µs per request; ` +
          `+${fmt((r.pluginMillisPerRequest - r.plainMillisPerRequest) * 1000, 0)} µs; plain fetch sending the same identity headers: ` +
          `${fmt(r.sameHeadersMillisPerRequest * 1000, 0)} µs, ratio ${fmt(r.sameHeadersRatio)}x)`
      )
      console.log(
        `overhead vs same headers (${rt.name}): plugin fetch vs plain fetch sending the same identity headers: ratio ${fmt(r.vsSameHeaders)}x ` +
          `(median of ${runs} runs; ${fmt(r.pluginMillisPerRequest * 1000, 0)} µs vs ${fmt(r.sameHeadersMillisPerRequest * 1000, 0)} µs); goal <= 1.03x`
      )
    }
  } finally {
    server.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
  return result
}
