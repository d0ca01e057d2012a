/**
 * The disk, the clock and the scheduler, through the real `kimi-auth token`
 * (child processes) against the emulator, which revokes the whole login when
 * a spent refresh token is replayed:
 *
 * - **Retry-After**: 429 with Retry-After 60 / 3600 on the token endpoint: a
 *   still-valid token is printed at once; an expired one fails fast naming the
 *   delay; a second process never waits on the lock meanwhile.
 * - **Full disk** (a real tmpfs; skipped where `mount` is not permitted): no
 *   refresh is attempted while the new token file cannot be written (the
 *   refresh token stays unspent), the error names ENOSPC and exits non-zero;
 *   a disk that fills while the request is in flight still gets the new
 *   tokens (written into the space reserved before the request).
 * - **Paused holder**: the lock holder is stopped with SIGSTOP for longer than
 *   the stale timeout, then resumed: zero logins lost.
 * - **Clock skew**: a waiter whose wall clock is 60 s ahead, and a holder
 *   whose clock is 60 s behind (a `--import` preload shifts Date): zero
 *   logins lost.
 * - **Kills in the in-flight window**: `kimi-auth token` killed with SIGKILL
 *   at evenly spread moments of a refresh; every kill that lands after the
 *   server rotated and before the save loses the login (no client can
 *   prevent that); counted, and each such loss must be explained by the next
 *   run ("interrupted"), and no kill outside the window may lose it.
 *
 * Counts are printed as `fault …` lines for BENCHMARKS.md.
 */
import { type ChildProcess, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { afterEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { type CliResult, isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { repoRoot } from "../support/tmp.js"
import { seedLogin } from "../support/tokens.js"
import { record } from "./support.js"

const skewPreload = pathToFileURL(path.join(repoRoot, "test", "fixtures", "clock-skew.mjs")).href
const KILLS = Math.max(10, Number(process.env["KIMI_AUTH_INFLIGHT_KILLS"] ?? 40))

let home = ""
let emu: StartedEmulator | undefined
const mounts: Array<string> = []
afterEach(async () => {
  await emu?.close()
  emu = undefined
  for (const m of mounts.splice(0)) spawnSync("umount", [m])
  if (home) rmTemp(home)
  home = ""
})

const now = () => Math.floor(Date.now() / 1000)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const waitFor = async (predicate: () => boolean, what: string, ms = 20_000) => {
  const t = Date.now()
  while (!predicate()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting until ${what}`)
    await sleep(2)
  }
}

interface Setup {
  readonly storage: string
  readonly env: NodeJS.ProcessEnv
  readonly tokenFile: string
  readonly lockFile: string
  /** The refresh token seeded into the file. */
  readonly seeded: string
}

/** Writes a login the emulator knows into `storage`, expiring at `expiresAt`. */
const seed = (storage: string, expiresAt: number) => {
  const t = emu!.issueTokens()
  seedLogin(path.join(storage, "oauth.json"), { access: t.accessToken, refresh: t.refreshToken, expiresAt })
  return t.refreshToken
}

const setup = async (storageDir?: string, expiresAt = now() - 60): Promise<Setup> => {
  home = makeTemp("kimi-faults-disk-")
  emu ??= await start({ interval: 1 })
  const storage = storageDir ?? path.join(home, ".opencode-kimi-auth")
  fs.mkdirSync(storage, { recursive: true, mode: 0o700 })
  const seeded = seed(storage, expiresAt)
  return {
    storage,
    env: isolatedEnv(home, { KIMI_OAUTH_HOST: emu.url, OPENCODE_KIMI_AUTH_DIR: storage, ...(process.env["KIMI_FAULTS_DEBUG"] ? { DEBUG: "opencode-kimi-auth" } : {}) }),
    tokenFile: path.join(storage, "oauth.json"),
    lockFile: path.join(storage, "oauth.json.lock"),
    seeded
  }
}

const storedRefresh = (file: string) => JSON.parse(fs.readFileSync(file, "utf8")).refresh_token as string

const token = async (env: NodeJS.ProcessEnv, label: string, onSpawn?: (c: ChildProcess) => void): Promise<CliResult & { millis: number }> => {
  const t = Date.now()
  const r = await runCli(["token"], env, { timeoutMs: 120_000, ...(onSpawn ? { onSpawn } : {}) })
  record(`disk-clock-${label}`, `exit ${r.code} ${r.signal ?? ""}, stdout ${r.stdout.length} chars\n${r.stderr}`)
  return { ...r, millis: Date.now() - t }
}

describe("Retry-After on the token endpoint (real processes)", () => {
  it("429 Retry-After: 60 with a still-valid token: printed at once, the next process does not wait on the lock", async () => {
    // Due (inside the refresh window) but valid for 100 s more.
    const s = await setup(undefined, now() + 100)
    emu!.setFaults({ tooManyRequestsRate: 1, retryAfterSeconds: 60, paths: ["/api/oauth/token"] })
    const [a, b] = await Promise.all([token(s.env, "retry-after-valid-a"), token(s.env, "retry-after-valid-b")])
    console.log(`fault Retry-After 60 (token still valid): two kimi-auth token processes done in ${a.millis} / ${b.millis} ms`)
    for (const r of [a, b]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout).toMatch(/^emu_at_/)
      expect(r.millis).toBeLessThan(15_000)
    }
    expect(storedRefresh(s.tokenFile)).toBe(s.seeded)
    expect(emu!.stats().familiesRevoked).toBe(0)
  }, 60_000)

  it("Retry-After: 3600 with an expired token fails fast naming the delay; the login is intact", async () => {
    const s = await setup()
    emu!.setFaults({ tooManyRequestsRate: 1, retryAfterSeconds: 3600, paths: ["/api/oauth/token"] })
    const r = await token(s.env, "retry-after-3600")
    console.log(`fault Retry-After 3600 (token expired): kimi-auth token failed in ${r.millis} ms`)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain("Kimi asked to wait 3600 s")
    expect(r.millis).toBeLessThan(15_000)
    emu!.setFaults({})
    const ok = await token(s.env, "retry-after-3600-after")
    expect(ok.code, ok.stderr).toBe(0)
    expect(emu!.stats().familiesRevoked).toBe(0)
  }, 60_000)

  it("Retry-After: 5 for a while with an expired token: both processes succeed, neither times out on the lock", async () => {
    const s = await setup()
    emu!.setFaults({ tooManyRequestsRate: 1, retryAfterSeconds: 5, paths: ["/api/oauth/token"] })
    setTimeout(() => emu?.setFaults({}), 7_000)
    const [a, b] = await Promise.all([token(s.env, "retry-after-5-a"), token(s.env, "retry-after-5-b")])
    console.log(`fault Retry-After 5 for 7 s (token expired): two processes done in ${a.millis} / ${b.millis} ms`)
    for (const r of [a, b]) {
      expect(r.code, r.stderr).toBe(0)
      expect(r.stderr).not.toMatch(/LOCK_TIMEOUT|Gave up/)
    }
    expect(a.stdout).toBe(b.stdout)
    expect(emu!.stats().refreshes).toBe(1)
    expect(emu!.stats().familiesRevoked).toBe(0)
  }, 90_000)
})

/** Mounts a tmpfs of `size` at a fresh folder; `undefined` when this machine does not allow it. */
const mountTmpfs = (size: string): string | undefined => {
  if (process.platform !== "linux") return undefined
  const dir = makeTemp("kimi-faults-tmpfs-")
  const r = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir], { encoding: "utf8" })
  if (r.status !== 0) {
    rmTemp(dir)
    return undefined
  }
  mounts.push(dir)
  return dir
}

const canMount = (() => {
  const dir = mountTmpfs("64k")
  if (dir === undefined) return false
  spawnSync("umount", [dir])
  mounts.splice(mounts.indexOf(dir), 1)
  rmTemp(dir)
  return true
})()
if (!canMount) {
  console.log("fault full disk: SKIPPED, this machine does not permit `mount -t tmpfs` (run the fault suite as root on Linux)")
}

/** Fills the file system holding `dir`, then frees `leaveBytes`. Returns the filler's path. */
const fill = (dir: string, leaveBytes = 0) => {
  const filler = path.join(dir, "filler")
  const fd = fs.openSync(filler, "a")
  const chunk = Buffer.alloc(4096)
  try {
    for (;;) fs.writeSync(fd, chunk)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e
  } finally {
    fs.closeSync(fd)
  }
  if (leaveBytes > 0) fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - leaveBytes))
  return filler
}

describe.skipIf(!canMount)("a full disk (a real tmpfs)", () => {
  it("no room at all, then room for the lock only: no refresh attempted, exit 8 naming ENOSPC; with room again it refreshes", async () => {
    const dir = mountTmpfs("512k")!
    const s = await setup(dir)
    const filler = fill(dir)
    const full = await token(s.env, "tmpfs-full")
    expect(full.code).toBe(8)
    expect(full.stderr).toContain("ENOSPC")
    expect(emu!.stats().refreshes).toBe(0)
    fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - 8192))
    const lockOnly = await token(s.env, "tmpfs-lock-only")
    expect(lockOnly.code).toBe(8)
    expect(lockOnly.stderr).toContain("ENOSPC")
    expect(lockOnly.stderr).toContain("no refresh was attempted")
    expect(emu!.stats().refreshes).toBe(0)
    expect(storedRefresh(s.tokenFile)).toBe(s.seeded)
    fs.rmSync(filler)
    const ok = await token(s.env, "tmpfs-room")
    expect(ok.code, ok.stderr).toBe(0)
    expect(emu!.stats().refreshes).toBe(1)
    expect(emu!.stats().familiesRevoked).toBe(0)
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".tmp") || n.endsWith(".refreshing"))).toEqual([])
    console.log("fault full disk (tmpfs): 2 refreshes refused before spending the refresh token, 0 logins lost")
  }, 90_000)

  it("the disk fills while the request is in flight: the new tokens are saved into the reserved space, zero logins lost", async () => {
    const dir = mountTmpfs("512k")!
    const s = await setup(dir)
    emu!.setFaults({ latencyMillis: 1500, paths: ["/api/oauth/token"] })
    const before = emu!.requests("/api/oauth/token").length
    let filler = ""
    const run = token(s.env, "tmpfs-fills-in-flight")
    await waitFor(() => emu!.requests("/api/oauth/token").length > before, "the refresh request arrived")
    filler = fill(dir)
    const r = await run
    expect(r.code, r.stderr).toBe(0)
    expect(emu!.stats().refreshes).toBe(1)
    expect(storedRefresh(s.tokenFile)).not.toBe(s.seeded)
    fs.rmSync(filler)
    emu!.setFaults({})
    emu!.expireAccessTokens()
    const raw = JSON.parse(fs.readFileSync(s.tokenFile, "utf8"))
    fs.writeFileSync(s.tokenFile, JSON.stringify({ ...raw, expires_at: now() - 60 }), { mode: 0o600 })
    const again = await token(s.env, "tmpfs-after")
    expect(again.code, again.stderr).toBe(0)
    expect(emu!.stats().familiesRevoked).toBe(0)
    console.log("fault full disk (tmpfs) during the request: saved into the reserved space, 0 logins lost")
  }, 90_000)
})

/** Spawns `kimi-auth token` as the holder and resolves once it holds the lock (its request is then delayed by the emulator). */
const holderWithLock = async (s: Setup, label: string, env: NodeJS.ProcessEnv = s.env) => {
  let child: ChildProcess | undefined
  const done = token(env, label, (c) => (child = c))
  await waitFor(() => fs.existsSync(s.lockFile), "the holder took the lock")
  return { child: child!, done }
}

describe("a paused lock holder", () => {
  it("SIGSTOP for 12 s (longer than the 10 s stale timeout) then SIGCONT: the waiter never takes over, zero logins lost", async () => {
    const s = await setup()
    emu!.setFaults({ latencyMillis: 2000, paths: ["/api/oauth/token"] })
    const holder = await holderWithLock(s, "paused-holder")
    holder.child.kill("SIGSTOP")
    const waiter = token(s.env, "paused-waiter")
    await sleep(12_000)
    holder.child.kill("SIGCONT")
    const [a, b] = await Promise.all([holder.done, waiter])
    console.log(`fault paused holder (SIGSTOP 12 s): holder exit ${a.code}, waiter exit ${b.code} after ${b.millis} ms, ` +
      `refreshes ${emu!.stats().refreshes}, logins lost ${emu!.stats().familiesRevoked}`)
    expect(a.code, a.stderr).toBe(0)
    expect(b.code, b.stderr).toBe(0)
    expect(a.stdout).toBe(b.stdout)
    expect(emu!.stats().refreshes).toBe(1)
    expect(emu!.stats().familiesRevoked).toBe(0)
  }, 90_000)
})

describe("clock skew between processes", () => {
  for (const { who, offset } of [{ who: "waiter", offset: 60_000 }, { who: "holder", offset: -60_000 }]) {
    it(`the ${who}'s wall clock ${offset > 0 ? "60 s ahead" : "60 s behind"}: the lock is never taken over, zero logins lost`, async () => {
      const s = await setup()
      emu!.setFaults({ latencyMillis: 3000, paths: ["/api/oauth/token"] })
      const skewed = { ...s.env, NODE_OPTIONS: `--import=${skewPreload}`, KIMI_TEST_CLOCK_OFFSET_MS: String(offset) }
      const holder = await holderWithLock(s, `skew-${who}-holder`, who === "holder" ? skewed : s.env)
      const waiter = await token(who === "waiter" ? skewed : s.env, `skew-${who}-waiter`)
      const a = await holder.done
      console.log(`fault clock skew (${who} ${offset / 1000} s): refreshes ${emu!.stats().refreshes}, logins lost ${emu!.stats().familiesRevoked}`)
      expect(a.code, a.stderr).toBe(0)
      expect(waiter.code, waiter.stderr).toBe(0)
      expect(waiter.stdout).toBe(a.stdout)
      expect(emu!.stats().refreshes).toBe(1)
      expect(emu!.stats().familiesRevoked).toBe(0)
    }, 60_000)
  }
})

describe("SIGKILL during a refresh", () => {
  it(`${KILLS} kills spread evenly over a refresh: losses only inside the in-flight window, each explained by the next run`, async () => {
    const s = await setup()
    emu!.setFaults({ latencyMillis: 200, paths: ["/api/oauth/token"] })
    // How long an undisturbed refresh takes, process start included.
    const spans: Array<number> = []
    for (let i = 0; i < 3; i++) {
      seed(s.storage, now() - 60)
      spans.push((await token(s.env, "inflight-calibrate")).millis)
    }
    const span = spans.sort((a, b) => a - b)[1]!
    let inWindow = 0
    let lost = 0
    let explained = 0
    let lostOutside = 0
    for (let i = 0; i < KILLS; i++) {
      const seeded = seed(s.storage, now() - 60)
      const before = emu!.stats().refreshes
      const delay = Math.round(((i + 0.5) / KILLS) * span)
      await token(s.env, "inflight-kill", (c) => setTimeout(() => c.kill("SIGKILL"), delay))
      const rotated = emu!.stats().refreshes > before
      const stale = storedRefresh(s.tokenFile) === seeded
      if (rotated && stale) inWindow++
      const next = await token(s.env, "inflight-next")
      if (next.code !== 0) {
        lost++
        if (next.stderr.includes("interrupted")) explained++
        if (!(rotated && stale)) lostOutside++
      }
    }
    const line = `fault SIGKILL during refresh: ${KILLS} kills spread over ${span} ms (200 ms latency), ${inWindow} in the ` +
      `in-flight window, ${lost} logins lost (${explained} explained as an interrupted refresh), ${lostOutside} lost outside the window`
    console.log(line)
    record("disk-clock-inflight-summary", line)
    expect(lostOutside).toBe(0)
    expect(lost).toBe(inWindow)
    expect(explained).toBe(lost)
  }, 600_000)
})
