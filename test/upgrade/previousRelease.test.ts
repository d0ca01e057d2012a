/**
 * Upgrade safety (issue 21): users upgrade while an older copy still runs
 * (an open OpenCode window keeps the plugin it loaded). The previous release
 * is today's main before this work, commit {@link PREVIOUS}, built from
 * `git archive` and packed with `npm pack` into a cached temp folder (never
 * in git), installed like a user's copy. It and this build share one token
 * file, one lock and one rotation family:
 *
 * - several `kimi-auth token` of each, at once, on one due login: 1 refresh, 0 reuse;
 * - each serves the other's login;
 * - each honours the other's logout (the other stops using the login).
 *
 * Skipped, with the reason, where the commit is not in the clone (a shallow CI checkout).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { cliPath, isolatedEnv, makeTemp, repoRoot, rmTemp } from "../support/cli.js"
import { INSTALL_TIMEOUT_MS, withDirLock } from "../support/opencode.js"

/** The previous release: main as it stood before issue 21's work. */
const PREVIOUS = "80a3778"

const hasCommit = spawnSync("git", ["cat-file", "-e", `${PREVIOUS}^{commit}`], { cwd: repoRoot }).status === 0
const missing = hasCommit ? undefined : `commit ${PREVIOUS} is not in this clone (shallow?): no previous release to race`
if (missing !== undefined) console.warn(`skipping the previous-release race: ${missing}`)

const cache = path.join(os.tmpdir(), `opencode-kimi-auth-previous-${PREVIOUS}`)

/** Runs `npm …` without npx's npm_* variables (they would point npm at this checkout). */
const npm = (args: ReadonlyArray<string>, cwd: string) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
  const r = spawnSync("npm", args, { cwd, env, encoding: "utf8", timeout: INSTALL_TIMEOUT_MS })
  if (r.status !== 0) throw new Error(`npm ${args.join(" ")} in ${cwd} failed (${r.status}): ${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** The previous release's `kimi-auth`, packed and installed once into {@link cache} (a `.ok` stamp records it). */
const ensurePrevious = (): Promise<string> => {
  const bin = path.join(cache, "user", "node_modules", "opencode-kimi-auth", "dist", "cli", "main.js")
  const ok = path.join(cache, ".ok")
  if (fs.existsSync(ok) && fs.existsSync(bin)) return Promise.resolve(bin)
  return withDirLock(`${cache}.lock`, async () => {
    if (fs.existsSync(ok) && fs.existsSync(bin)) return bin
    fs.rmSync(cache, { recursive: true, force: true })
    const tree = path.join(cache, "tree")
    fs.mkdirSync(tree, { recursive: true })
    execFileSync("sh", ["-c", `git archive ${PREVIOUS} | tar -x -C '${tree}'`], { cwd: repoRoot })
    // Its devDependencies are this checkout's (the same lock line): built with them, packed without scripts.
    fs.symlinkSync(path.join(repoRoot, "node_modules"), path.join(tree, "node_modules"))
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: tree })
    execFileSync(process.execPath, ["scripts/build-bundle.mjs"], { cwd: tree })
    const packed = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", cache], tree))[0].filename as string
    const user = path.join(cache, "user")
    fs.mkdirSync(user)
    fs.writeFileSync(path.join(user, "package.json"), JSON.stringify({ name: "previous-user", private: true }))
    npm(["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", path.join(cache, packed)], user)
    fs.rmSync(tree, { recursive: true, force: true })
    fs.writeFileSync(ok, `${PREVIOUS}\n`)
    return bin
  }, (m) => new Error(m))
}

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const runBin = (bin: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, timeoutMs = 60_000) =>
  new Promise<Ran>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()))
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.on("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

describe.skipIf(missing !== undefined)("the previous release beside this one (one token file, one lock, one family)", () => {
  let previous: string
  let emulator: StartedEmulator
  let home: string
  let env: NodeJS.ProcessEnv
  const tokenFile = () => path.join(home, ".opencode-kimi-auth", "oauth.json")
  const read = () => JSON.parse(fs.readFileSync(tokenFile(), "utf8"))

  beforeAll(async () => {
    expect(fs.existsSync(cliPath), "run `npm run build` first").toBe(true)
    previous = await ensurePrevious()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 300 })
    home = makeTemp("kimi-previous-")
    env = isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })
  }, INSTALL_TIMEOUT_MS)
  afterAll(async () => {
    await emulator?.close()
    if (home) rmTemp(home)
  })

  const login = async (bin: string) => {
    const r = await runBin(bin, ["login", "--no-browser"], env)
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
    return read()
  }
  const token = (bin: string) => runBin(bin, ["token"], env)

  it("several `kimi-auth token` of each release at once on one due login: 1 refresh, 0 reuse, one token for all", async () => {
    await login(cliPath)
    const stored = read()
    fs.writeFileSync(tokenFile(), JSON.stringify({ ...stored, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    emulator.expireAccessTokens()
    const { refreshes, spentTokenReplays, familiesRevoked } = emulator.stats()
    const runs = await Promise.all([previous, cliPath, previous, cliPath, previous, cliPath, previous, cliPath].map((bin) => token(bin)))
    for (const r of runs) expect(r.code, r.stderr).toBe(0)
    const after = read()
    expect(new Set(runs.map((r) => r.stdout.trim()))).toEqual(new Set([after.access_token]))
    expect(emulator.stats().refreshes - refreshes).toBe(1)
    expect(emulator.stats().spentTokenReplays - spentTokenReplays).toBe(0)
    expect(emulator.stats().familiesRevoked - familiesRevoked).toBe(0)
  }, 180_000)

  it.each([
    { by: "the previous release", other: "this one", first: () => previous, second: () => cliPath },
    { by: "this release", other: "the previous one", first: () => cliPath, second: () => previous }
  ])("a login by $by is served by $other, and its logout is honoured by $other", async ({ first, second }) => {
    const stored = await login(first())
    const served = await token(second())
    expect(served.code, served.stderr).toBe(0)
    expect(served.stdout.trim()).toBe(stored.access_token)
    const out = await runBin(first(), ["logout"], env)
    expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0)
    const after = await token(second())
    expect(after.code).not.toBe(0)
    expect(after.stdout.trim()).not.toBe(stored.access_token)
    expect(fs.existsSync(tokenFile())).toBe(false)
  }, 180_000)
})
