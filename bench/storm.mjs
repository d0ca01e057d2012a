// Refresh storms against the bundled Kimi emulator (rotating refresh tokens,
// reuse detection: a replayed refresh token revokes the login):
//  - 1,000 concurrent in-process callers of KimiOAuthClient.getValidAccessToken with an expired token;
//  - 1,000 concurrent requests through the OpenCode plugin's fetch with an expired token;
//  - 8 processes x 50 callers, released at once.
// Goal: 1 refresh each, 0 rejected; time to settle reported.
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { benchDir, cleanEnv, fmt, median, nowSeconds, repoRoot, tempDir, writeTokenFile } from "./lib.mjs"

const { start } = await import(path.join(repoRoot, "dist", "emulator", "KimiEmulator.js"))
const lib = await import(path.join(repoRoot, "dist", "index.js"))
// OpenCode's entry (exports["./server"]): a default `{ id, server }`, else the first export of that shape.
const serverEntry = await import(path.join(repoRoot, "dist", "bundle", "server.js"))
const plugin = typeof serverEntry.default?.server === "function"
  ? serverEntry.default
  : Object.values(serverEntry).find((p) => typeof p?.server === "function")

const refreshCount = (emu) => emu.stats().refreshes
const seedExpired = (emu, storage) => {
  const t = emu.issueTokens()
  writeTokenFile(storage, { access: t.accessToken, refresh: t.refreshToken, expiresAt: nowSeconds() - 60 })
}

const inProcess = async (callers) => {
  const emu = await start({ interval: 1 })
  const home = tempDir("kimi-bench-storm-")
  const storage = path.join(home, "store")
  try {
    seedExpired(emu, storage)
    const client = new lib.KimiOAuthClient({ storageDir: storage, oauthHost: emu.url })
    const t = performance.now()
    const results = await Promise.allSettled(Array.from({ length: callers }, () => client.getValidAccessToken()))
    const millis = performance.now() - t
    await client.dispose()
    const ok = results.filter((r) => r.status === "fulfilled")
    return {
      millis,
      refreshes: refreshCount(emu),
      rejected: results.length - ok.length,
      distinctTokens: new Set(ok.map((r) => r.value)).size,
      replays: emu.stats().spentTokenReplays
    }
  } finally {
    await emu.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

const viaPlugin = async (callers) => {
  const emu = await start({ interval: 1 })
  const home = tempDir("kimi-bench-storm-plugin-")
  const storage = path.join(home, "store")
  try {
    seedExpired(emu, storage)
    const hooks = await plugin.server({ client: {} }, { storageDir: storage, oauthHost: emu.url, apiBaseUrl: emu.apiBaseUrl })
    const provider = await hooks.auth.loader(async () => undefined, {})
    const t = performance.now()
    const responses = await Promise.all(Array.from({ length: callers }, () =>
      provider.fetch(`${emu.apiBaseUrl}/models`, { headers: { authorization: "Bearer kimi-oauth" } }).then(async (r) => {
        await r.arrayBuffer()
        return r.status
      })))
    const millis = performance.now() - t
    await hooks.dispose()
    return {
      millis,
      refreshes: refreshCount(emu),
      rejected: responses.filter((s) => s !== 200).length,
      apiUnauthorized: emu.stats().apiUnauthorized,
      replays: emu.stats().spentTokenReplays
    }
  } finally {
    await emu.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

const crossProcess = async (processes, callers) => {
  const emu = await start({ interval: 1 })
  const home = tempDir("kimi-bench-storm-xp-")
  const storage = path.join(home, "store")
  try {
    seedExpired(emu, storage)
    const env = cleanEnv({ HOME: home })
    const children = Array.from({ length: processes }, () => {
      const child = spawn(process.execPath, [path.join(benchDir, "storm-child.mjs"), String(callers), storage, emu.url], { cwd: repoRoot, env, stdio: ["pipe", "pipe", "pipe"] })
      let out = ""
      let err = ""
      child.stdout.setEncoding("utf8").on("data", (c) => (out += c))
      child.stderr.setEncoding("utf8").on("data", (c) => (err += c))
      const ready = new Promise((resolve) => child.stdout.on("data", () => out.includes("ready\n") && resolve()))
      const done = new Promise((resolve) => child.on("close", (code) => resolve({ code, out, err })))
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
      done.then(() => clearTimeout(timer))
      return { child, ready, done }
    })
    await Promise.all(children.map((c) => c.ready))
    const t = performance.now()
    for (const c of children) c.child.stdin.end("go\n")
    const outs = await Promise.all(children.map((c) => c.done))
    const millis = performance.now() - t
    const parsed = outs.map((o) => {
      if (o.code !== 0) throw new Error(`storm child failed (${o.code}): ${o.out}\n${o.err}`)
      return JSON.parse(o.out.trim().split("\n").pop())
    })
    const tokens = new Set(parsed.flatMap((p) => p.tokens))
    return {
      millis,
      refreshes: refreshCount(emu),
      rejected: parsed.reduce((a, p) => a + p.failed, 0),
      distinctTokens: tokens.size,
      replays: emu.stats().spentTokenReplays,
      errors: [...new Set(parsed.flatMap((p) => p.errors))]
    }
  } finally {
    await emu.close()
    fs.rmSync(home, { recursive: true, force: true })
  }
}

const summarize = (name, rs, goal) => {
  const s = {
    runs: rs.length,
    medianSettleMillis: median(rs.map((r) => r.millis)),
    maxRefreshes: Math.max(...rs.map((r) => r.refreshes)),
    totalRejected: rs.reduce((a, r) => a + r.rejected, 0),
    totalReplays: rs.reduce((a, r) => a + r.replays, 0),
    all: rs.map((r) => ({ ...r, millis: Math.round(r.millis) }))
  }
  console.log(
    `storm ${name}: refreshes per storm ${rs.map((r) => r.refreshes).join(", ")} (max ${s.maxRefreshes}), rejected ${s.totalRejected}, ` +
      `spent-token replays ${s.totalReplays}, time to settle median ${fmt(s.medianSettleMillis, 0)} ms over ${rs.length} runs; ${goal}`
  )
  return s
}

export const runStorm = async ({ runs = 5 } = {}) => {
  const a = []
  const b = []
  const c = []
  for (let i = 0; i < runs; i++) {
    a.push(await inProcess(1000))
    b.push(await viaPlugin(1000))
    c.push(await crossProcess(8, 50))
  }
  return {
    inProcess: summarize("1000 in-process callers (KimiOAuthClient)", a, "goal: 1 refresh, 0 rejected"),
    plugin: summarize("1000 concurrent plugin fetches", b, "goal: 1 refresh, 0 rejected"),
    crossProcess: summarize("8 processes x 50 callers", c, "goal: 1 refresh, 0 rejected")
  }
}
