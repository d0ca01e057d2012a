// Shared helpers of the benchmarks: statistics, child processes, the fixture.
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const benchDir = path.dirname(fileURLToPath(import.meta.url))
export const repoRoot = path.resolve(benchDir, "..")
export const fixtureDir = path.join(benchDir, "fixture")
export const bunPath = path.join(fixtureDir, "node_modules", ".bin", process.platform === "win32" ? "bun.exe" : "bun")
export const anthropicEntry = path.join(fixtureDir, "node_modules", "opencode-anthropic-auth", "index.mjs")

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
}
export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]
}
/**
 * A distribution-free ~95% interval of the median of `xs` (paired differences, say): the order statistics a
 * sign test gives, `[x(k), x(n+1-k)]` with `k = floor((n - 1.96 sqrt(n)) / 2)`; `undefined` below 6 values.
 */
export const medianInterval = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  const k = Math.floor((n - 1.96 * Math.sqrt(n)) / 2)
  return k < 1 ? undefined : [s[k - 1], s[n - k]]
}
export const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : String(x))
export const ratio = (x) => `${fmt(x)}x`

/** Installs the pinned benchmark anchors (bun, opencode-anthropic-auth) once, from bench/fixture's lock file. */
export const ensureFixture = () => {
  if (fs.existsSync(bunPath) && fs.existsSync(anthropicEntry)) return
  console.log("installing the benchmark fixture (bun, opencode-anthropic-auth) in bench/fixture …")
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  let r = spawnSync(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixtureDir, stdio: "inherit" })
  if (r.status !== 0) {
    // A lock made on another platform may lack this platform's optional binary: plain install resolves it.
    r = spawnSync(npm, ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixtureDir, stdio: "inherit" })
  }
  if (r.status !== 0 || !fs.existsSync(bunPath)) throw new Error(`could not install bench/fixture (npm exited ${r.status})`)
}

export const bunVersion = () => {
  try {
    return spawnSync(bunPath, ["--version"], { encoding: "utf8" }).stdout.trim()
  } catch {
    return "unavailable"
  }
}

export const machine = () => {
  let cpu = "unknown"
  try {
    cpu = /model name\s*:\s*(.*)/.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown"
  } catch {
    cpu = os.cpus()[0]?.model ?? "unknown"
  }
  return {
    nproc: os.availableParallelism?.() ?? os.cpus().length,
    cpu,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    bun: bunVersion(),
    platform: `${process.platform} ${os.release()} ${process.arch}`
  }
}

/** Runs a command; resolves with its exit, output and wall time. Killed after `timeoutMs`. */
export const run = (cmd, args, { env = process.env, cwd = repoRoot, timeoutMs = 60_000, input } = {}) =>
  new Promise((resolve, reject) => {
    const start = process.hrtime.bigint()
    const child = spawn(cmd, args, { env, cwd, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c))
    if (input !== undefined) child.stdin.end(input)
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${cmd} ${args.join(" ")} timed out after ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, millis: Number(process.hrtime.bigint() - start) / 1e6 })
    })
  })

export const tempDir = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/** Environment without the variables that would point the library elsewhere. */
export const cleanEnv = (extra = {}) => {
  const env = { ...process.env }
  for (const k of ["DEBUG", "KIMI_OAUTH_HOST", "KIMI_CODE_OAUTH_HOST", "KIMI_CODE_BASE_URL", "OPENCODE_KIMI_AUTH_DIR"]) delete env[k]
  return { ...env, NO_COLOR: "1", ...extra }
}

/** Writes a token file as the library does (0600 in a 0700 folder). */
export const writeTokenFile = (storageDir, { access, refresh, expiresAt, expiresIn = 900 }) => {
  fs.mkdirSync(storageDir, { recursive: true, mode: 0o700 })
  fs.writeFileSync(
    path.join(storageDir, "oauth.json"),
    JSON.stringify({ version: 1, access_token: access, refresh_token: refresh, token_type: "Bearer", expires_in: expiresIn, scope: "kimi-code", expires_at: expiresAt }, null, 2) + "\n",
    { mode: 0o600 }
  )
}

export const nowSeconds = () => Math.floor(Date.now() / 1000)
