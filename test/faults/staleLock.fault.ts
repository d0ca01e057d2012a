/**
 * A stale lock left by a killed process, through the real `kimi-auth token`
 * (child processes) with an expired token that must be refreshed under the lock:
 * - the holder, a real process on this host, is killed with SIGKILL while it
 *   holds `oauth.json.lock`: recovered at once (its pid is gone);
 * - a lock whose holder cannot be checked (another host, e.g. a shared home
 *   folder): recovered once its heartbeat (mtime) has not changed for 10 s on
 *   the waiter's own monotonic clock, so after about 10 s of waiting.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { compiledLibrary, repoRoot } from "../support/tmp.js"
import { seedExpiredLogin } from "../support/tokens.js"
import { spawn } from "node:child_process"
import { record } from "./support.js"

let home = ""
let emu: StartedEmulator | undefined
afterEach(async () => {
  await emu?.close()
  emu = undefined
  if (home) rmTemp(home)
})

const setup = async () => {
  home = makeTemp("kimi-faults-lock-")
  emu = await start({ interval: 1 })
  const storage = path.join(home, ".opencode-kimi-auth")
  const t = emu.issueTokens()
  seedExpiredLogin(path.join(storage, "oauth.json"), { access: t.accessToken, refresh: t.refreshToken })
  return { storage, env: isolatedEnv(home, { KIMI_OAUTH_HOST: emu.url }) }
}

const tokenAfter = async (env: NodeJS.ProcessEnv, label: string) => {
  const t = Date.now()
  const r = await runCli(["token"], env, { timeoutMs: 40_000 })
  // stdout is the token itself (the command's purpose): only stderr goes to the scanned log.
  record(`stale-lock-${label}`, `exit ${r.code}, stdout ${r.stdout.length} chars\n${r.stderr}`)
  return { ...r, millis: Date.now() - t }
}

describe("a stale lock left by a killed process", () => {
  it("holder killed with SIGKILL while holding the lock: `kimi-auth token` refreshes at once", async () => {
    const { storage, env } = await setup()
    const holder = spawn(process.execPath, [path.join(repoRoot, "test", "fixtures", "store-lock.mjs"), compiledLibrary(), storage, "hold", "0"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"]
    })
    await new Promise<void>((resolve, reject) => {
      let out = ""
      const guard = setTimeout(() => reject(new Error(`holder never held the lock: ${out}`)), 20_000)
      holder.stdout.setEncoding("utf8").on("data", (c: string) => {
        out += c
        if (out.includes("held ")) {
          clearTimeout(guard)
          resolve()
        }
      })
    })
    expect(fs.existsSync(path.join(storage, "oauth.json.lock"))).toBe(true)
    holder.kill("SIGKILL")
    await new Promise((resolve) => holder.on("close", resolve))
    expect(fs.existsSync(path.join(storage, "oauth.json.lock")), "the killed holder left its lock").toBe(true)
    const r = await tokenAfter(env, "sigkill")
    console.log(`fault stale lock (SIGKILLed holder on this host): kimi-auth token done in ${r.millis} ms`)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^emu_at_/)
    expect(emu!.stats().refreshes).toBe(1)
    expect(r.millis).toBeLessThan(10_000)
  }, 60_000)

  it("a lock from a process that cannot be checked (another host): recovered after its heartbeat stood still for about 10 s", async () => {
    const { storage, env } = await setup()
    fs.writeFileSync(
      path.join(storage, "oauth.json.lock"),
      JSON.stringify({ pid: 4_000_000, hostname: "another-host.invalid", acquiredAt: new Date().toISOString(), token: "deadbeef" }) + "\n",
      { mode: 0o600 }
    )
    const r = await tokenAfter(env, "foreign")
    console.log(`fault stale lock (holder on another host, last heartbeat just now): kimi-auth token done in ${r.millis} ms`)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^emu_at_/)
    expect(emu!.stats().refreshes).toBe(1)
    // staleAfter is 10 s; process start and the refresh add well under 5 s.
    expect(r.millis).toBeGreaterThanOrEqual(9_000)
    expect(r.millis).toBeLessThan(15_000)
    expect(fs.existsSync(path.join(storage, "oauth.json.lock"))).toBe(false)
  }, 60_000)
})
