// This build against the previous release, side by side: the same
// measurements on both, interleaved round by round, so a drift of the shared
// machine hits both alike. The previous release is a git ref (KIMI_BENCH_BEFORE,
// default d7e38da: main before the layout of issue 23), checked out into a temporary worktree and built there with this
// checkout's node_modules. Figures: the CLI (`token`, `--help`, `status`),
// the plugin's start-up in Bun (import + server() + config hook, the bundle
// OpenCode loads) and the install footprint (the packed tarball installed).
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { footprint, megabytes } from "./footprint.mjs"
import { benchDir, bunPath, cleanEnv, fmt, median, nowSeconds, repoRoot, run, tempDir, writeTokenFile } from "./lib.mjs"

const BEFORE = process.env["KIMI_BENCH_BEFORE"] ?? "d7e38da"

/** The previous release, built in a worktree of its own (kept in the temp folder between runs, by commit). */
const buildBefore = () => {
  const commit = execFileSync("git", ["rev-parse", BEFORE], { cwd: repoRoot, encoding: "utf8" }).trim()
  const dir = path.join(os.tmpdir(), `kimi-bench-before-${commit.slice(0, 12)}`)
  if (!fs.existsSync(path.join(dir, "dist", "cli", "main.js"))) {
    fs.rmSync(dir, { recursive: true, force: true })
    execFileSync("git", ["worktree", "prune"], { cwd: repoRoot })
    execFileSync("git", ["worktree", "add", "--detach", dir, commit], { cwd: repoRoot, stdio: "ignore" })
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"))
    execFileSync("npm", ["run", "build"], { cwd: dir, stdio: "ignore" })
  }
  return { commit, dir }
}

const pack = (root, into) => {
  const out = execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", into], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
  return path.join(into, JSON.parse(out)[0].filename)
}

/** One case measured on both builds in every round, the order swapped each round; answers the medians and the new/old ratio. */
const sideBySide = async (rounds, make) => {
  const times = { now: [], before: [] }
  const ratios = []
  for (let r = 0; r < rounds; r++) {
    const round = {}
    for (const which of r % 2 === 0 ? ["now", "before"] : ["before", "now"]) {
      const { cmd, args, env } = make(which)
      const res = await run(cmd, args, { env, timeoutMs: 30_000 })
      if (res.code !== 0) throw new Error(`versus ${which} failed (${res.code}):\n${res.stderr}`)
      round[which] = res.millis
      times[which].push(res.millis)
    }
    ratios.push(round.now / round.before)
  }
  return { nowMillis: median(times.now), beforeMillis: median(times.before), ratio: median(ratios) }
}

export const runVersus = async ({ rounds = 20 } = {}) => {
  const before = buildBefore()
  const roots = { now: repoRoot, before: before.dir }
  const home = tempDir("kimi-bench-versus-")
  const storage = path.join(home, "store")
  writeTokenFile(storage, { access: "bench-access-token-valid", refresh: "bench-refresh-token", expiresAt: nowSeconds() + 3600, expiresIn: 3600 })
  fs.writeFileSync(path.join(storage, "device_id"), "11111111-2222-4333-8444-555555555555\n", { mode: 0o600 })
  const env = cleanEnv({ HOME: home, OPENCODE_KIMI_AUTH_DIR: storage })
  const result = { before: before.commit, rounds, cli: {}, startup: undefined, install: undefined }
  try {
    for (const command of [["token"], ["--help"], ["status"]]) {
      const cli = (which) => ({ cmd: process.execPath, args: [path.join(roots[which], "dist", "cli", "main.js"), ...command], env })
      result.cli[command.join(" ")] = await sideBySide(rounds, cli)
    }
    if (fs.existsSync(bunPath)) {
      const kimi = path.join(benchDir, "load", "kimi.mjs")
      result.startup = await sideBySide(rounds, (which) => ({
        cmd: bunPath,
        args: [kimi, path.join(roots[which], "dist", "bundle", "server.js"), "config"],
        env
      }))
    }
    const work = tempDir("kimi-bench-versus-pack-")
    try {
      const sizes = {}
      for (const which of ["now", "before"]) {
        const f = footprint([pack(roots[which], work)], { prefix: `kimi-bench-versus-${which}-` })
        sizes[which] = { megabytes: megabytes(f.bytes), packages: f.packages.length }
        fs.rmSync(f.folder, { recursive: true, force: true })
      }
      result.install = { ...sizes, ratio: sizes.now.megabytes / sizes.before.megabytes }
    } finally {
      fs.rmSync(work, { recursive: true, force: true })
    }
  } finally {
    fs.rmSync(home, { recursive: true, force: true })
  }
  const line = (label, r) =>
    console.log(`versus ${before.commit.slice(0, 7)}: ${label}: ${fmt(r.ratio)}x (median of ${rounds} interleaved rounds; ${fmt(r.nowMillis, 0)} ms vs ${fmt(r.beforeMillis, 0)} ms)`)
  for (const [k, r] of Object.entries(result.cli)) line(`kimi-auth ${k}`, r)
  if (result.startup) line("plugin start-up in Bun (import + server() + config)", result.startup)
  console.log(
    `versus ${before.commit.slice(0, 7)}: install footprint ${fmt(result.install.now.megabytes)} MB vs ${fmt(result.install.before.megabytes)} MB ` +
      `(${fmt(result.install.ratio)}x; ${result.install.now.packages} vs ${result.install.before.packages} package(s))`
  )
  return result
}
