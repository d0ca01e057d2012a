// OpenCode 2.1: what the plugin adds to a user's `opencode run --standalone` in the real 2.1.2, against the same host
// with the same provider on an API key (KIMI_API_KEY, no plugin), both answered by the emulator on loopback.
// Rounds interleaved (the order flips every round); wall time of each whole run, and its CPU time (user + sys,
// through /usr/bin/time where present: less sensitive to a busy machine than the wall clock).
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { cleanEnv, fmt, median, medianInterval, repoRoot, tempDir } from "./lib.mjs"

const fixture = path.join(repoRoot, "test", "opencode2", "fixture")
const VERSION = "2.1.2"

/** The 2.1.2 binary: OPENCODE2_BIN, else the test fixture's (installed with `npm ci` when missing). */
const ensureHost = () => {
  if (process.env.OPENCODE2_BIN) return process.env.OPENCODE2_BIN
  const pkg = path.join(fixture, "node_modules", "@opencode", "cli-linux-x64")
  const bin = path.join(pkg, "bin", "opencode")
  const ready = () => fs.existsSync(bin) && JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version === VERSION
  if (!ready()) {
    const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixture, stdio: "inherit" })
    if (r.status !== 0 || !ready()) throw new Error(`npm ci in ${fixture} failed`)
  }
  return bin
}

const timeBin = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined

/** One command; wall ms, and CPU ms when /usr/bin/time is there. */
const timed = (bin, args, { env, cwd }) =>
  new Promise((resolve, reject) => {
    const [cmd, argv] = timeBin ? [timeBin, ["-f", "KIMI_BENCH_TIME %U %S", bin, ...args]] : [bin, args]
    const started = process.hrtime.bigint()
    const child = spawn(cmd, argv, { env, cwd, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b) => (stdout += b))
    child.stderr.on("data", (b) => (stderr += b))
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000)
    child.on("error", reject)
    child.on("close", (code) => {
      clearTimeout(timer)
      const wall = Number(process.hrtime.bigint() - started) / 1e6
      const m = /KIMI_BENCH_TIME ([\d.]+) ([\d.]+)/.exec(stderr)
      resolve({ code, stdout, stderr, wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : undefined })
    })
  })

/** An isolated OpenCode 2.1 world: its own HOME and XDG folders, both Kimi providers pointed at the emulator. */
const world = (root, name, emulator, plugin) => {
  const d = path.join(root, name)
  for (const x of ["home", "project", "config/opencode", "data", "state", "cache"]) fs.mkdirSync(path.join(d, x), { recursive: true })
  fs.writeFileSync(path.join(d, "config/opencode/opencode.json"), JSON.stringify({
    ...(plugin ? { plugins: [plugin] } : {}),
    providers: { "kimi-code-plan-cn": { settings: { baseURL: emulator.apiBaseUrl } } }
  }))
  const env = cleanEnv({
    HOME: path.join(d, "home"),
    XDG_CONFIG_HOME: path.join(d, "config"),
    XDG_DATA_HOME: path.join(d, "data"),
    XDG_STATE_HOME: path.join(d, "state"),
    XDG_CACHE_HOME: path.join(d, "cache"),
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    NO_COLOR: "1",
    KIMI_OAUTH_HOST: emulator.oauthHost,
    KIMI_CODE_BASE_URL: emulator.apiBaseUrl,
    OPENCODE_KIMI_AUTH_DIR: path.join(d, "home", ".opencode-kimi-auth")
  })
  return { env, cwd: path.join(d, "project") }
}

export const runV21 = async ({ rounds = 30 } = {}) => {
  if (process.platform !== "linux" || process.arch !== "x64") {
    console.log("v21: OpenCode 2.1.2's binary package is linux-x64 only; skipped")
    return { skipped: true }
  }
  const bin = ensureHost()
  const { start } = await import(path.join(repoRoot, "dist", "bundle", "emulator.js"))
  // Access tokens live 24 h: no refresh inside the measured runs. Each run makes two chat calls (title and answer):
  // a quota large enough for any number of rounds.
  const plenty = 1_000_000
  const emulator = await start({
    interval: 1,
    autoApproveAfterMillis: 300,
    accessTokenTtlSeconds: 86_400,
    quota: { fiveHourLimit: plenty, weeklyLimit: plenty, monthlyLimit: plenty }
  })
  const root = tempDir("kimi-bench-v21-")
  try {
    // README's line (the checkout's one-file plugin folder); KIMI_BENCH_V21_PLUGIN: another folder (e.g. the
    // previous release's checkout, or this checkout's own folder, which 2.1.2 watches with its node_modules), to compare.
    const plugin = world(root, "plugin", emulator, process.env.KIMI_BENCH_V21_PLUGIN ?? path.join(repoRoot, "plugin"))
    const key = world(root, "key", emulator, undefined)
    key.env.KIMI_API_KEY = emulator.issueTokens().accessToken
    // KIMI_BENCH_V21_ALSO: one more plugin folder measured in the same rounds (e.g. the previous build), side by side.
    const also = process.env.KIMI_BENCH_V21_ALSO ? world(root, "also", emulator, process.env.KIMI_BENCH_V21_ALSO) : undefined
    for (const w of also ? [plugin, also] : [plugin]) {
      const login = await timed(bin, ["auth", "login", "kimi-code-plan-cn", "--method", "kimi-device", "--standalone"], w)
      if (login.code !== 0) throw new Error(`login failed: ${login.stdout}\n${login.stderr}`)
    }
    const cases = [["plugin", plugin], ["key", key], ...(also ? [["also", also]] : [])]
    const times = Object.fromEntries(cases.map(([name]) => [name, { wall: [], cpu: [] }]))
    const runOnce = (w) => timed(bin, ["run", "--standalone", "-m", "kimi-code-plan-cn/kimi-for-coding", "Say hello"], w)
    for (const [, w] of cases) await runOnce(w) // warm: the host's first start in a world writes its database
    for (let r = 0; r < rounds; r++) {
      // The order rotates every round (and flips, for two cases), so drift hits every case alike.
      const order = cases.length === 2 ? (r % 2 === 0 ? cases : [...cases].reverse()) : [...cases.slice(r % cases.length), ...cases.slice(0, r % cases.length)]
      for (const [name, w] of order) {
        const res = await runOnce(w)
        if (res.code !== 0 || !res.stdout.includes("Hello from the Kimi emulator")) throw new Error(`v21 ${name} run failed (${res.code}):\n${res.stdout}\n${res.stderr}`)
        times[name].wall.push(res.wall)
        if (res.cpu !== undefined) times[name].cpu.push(res.cpu)
      }
    }
    const m = (xs) => (xs.length ? median(xs) : NaN)
    const result = {
      rounds,
      host: `opencode ${VERSION}`,
      pluginWallMillis: m(times.plugin.wall),
      keyWallMillis: m(times.key.wall),
      addedWallMillis: m(times.plugin.wall) - m(times.key.wall),
      pluginCpuMillis: m(times.plugin.cpu),
      keyCpuMillis: m(times.key.cpu),
      addedCpuMillis: m(times.plugin.cpu) - m(times.key.cpu),
      pairedWallMillis: m(times.plugin.wall.map((x, i) => x - times.key.wall[i])),
      pairedCpuMillis: m(times.plugin.cpu.map((x, i) => x - times.key.cpu[i])),
      // How sure: the ~95% interval of the paired median (a run's own spread here is ±100-200 ms).
      pairedWallInterval: medianInterval(times.plugin.wall.map((x, i) => x - times.key.wall[i])),
      pairedCpuInterval: medianInterval(times.plugin.cpu.map((x, i) => x - times.key.cpu[i])),
      loadAverage: os.loadavg()[0],
      ...(also
        ? {
          alsoWallMillis: m(times.also.wall),
          alsoCpuMillis: m(times.also.cpu),
          alsoPairedWallMillis: m(times.also.wall.map((x, i) => x - times.key.wall[i])),
          alsoPairedWallInterval: medianInterval(times.also.wall.map((x, i) => x - times.key.wall[i])),
          alsoPairedCpuMillis: m(times.also.cpu.map((x, i) => x - times.key.cpu[i]))
        }
        : {})
    }
    const range = (r) => (r === undefined ? "" : ` [95%: ${fmt(r[0], 0)} to ${fmt(r[1], 0)}]`)
    console.log(
      `OpenCode ${VERSION} \`run --standalone\` through the plugin vs the same host on an API key (median of ${rounds} interleaved rounds): ` +
        `wall ${fmt(result.pluginWallMillis, 0)} ms vs ${fmt(result.keyWallMillis, 0)} ms (adds ${fmt(result.addedWallMillis, 0)} ms; paired median ${fmt(result.pairedWallMillis, 0)} ms${range(result.pairedWallInterval)}), ` +
        `CPU ${fmt(result.pluginCpuMillis, 0)} ms vs ${fmt(result.keyCpuMillis, 0)} ms (adds ${fmt(result.addedCpuMillis, 0)} ms; paired median ${fmt(result.pairedCpuMillis, 0)} ms${range(result.pairedCpuInterval)}); ` +
        `load average ${fmt(result.loadAverage, 1)} on ${os.cpus().length} cores`
    )
    if (also) {
      console.log(
        `  and ${process.env.KIMI_BENCH_V21_ALSO} in the same rounds: wall ${fmt(result.alsoWallMillis, 0)} ms (paired median vs key ` +
          `${fmt(result.alsoPairedWallMillis, 0)} ms${range(result.alsoPairedWallInterval)}), CPU ${fmt(result.alsoCpuMillis, 0)} ms (paired median vs key ${fmt(result.alsoPairedCpuMillis, 0)} ms)`
      )
    }
    return result
  } finally {
    await emulator.close()
    fs.rmSync(root, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rounds = Number(process.argv[2] ?? 30)
  await runV21({ rounds })
}
