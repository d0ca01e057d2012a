/**
 * The Bun lane of the fault suite (issue 15): OpenCode runs the plugin in its
 * own Bun, so the refresh, storm and crash lanes run their child processes
 * under OpenCode's Bun (the pinned opencode binary with `BUN_BE_BUN=1`, Bun
 * 1.3.14), while this file itself runs under the suite's Node.
 *
 * - refresh: 20 refreshes in a row against the emulator (it rotates refresh
 *   tokens and revokes a family on replay), alternately by `kimi-auth token`
 *   (dist/cli/main.js) and by the promise facade (test/fixtures/facade-token.mjs),
 *   the access token made expired on disk before each. Each must rotate, exit
 *   0 and leave a token file that decodes to the new pair: counted are files
 *   of spaces, unparsable files, corrupt copies moved aside and lost logins.
 *   Under Bun every refresh once wrote the file as spaces (issue 15).
 * - storm: 5 storms of 8 Bun processes x 50 callers of the facade with an
 *   expired token, released at once: exactly one refresh reaches the server
 *   per storm, no caller rejected, every process gets the same new token.
 * - crash: a writer (test/fixtures/store-writer.mjs, the real TokenStore) saves
 *   two token sets alternately through a refresh's save (`prepareSave`,
 *   marker, `commit`) or a plain `save`, and is SIGKILLed at a random moment,
 *   100 times per path (`KIMI_BUN_CRASH_ITERATIONS`): 0 unparsable, 0 lost.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { decodeTokenFile } from "../../src/tokens/TokenSet.js"
import { cliPath, isolatedEnv, makeTemp, rmTemp } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, skipOpencode } from "../support/opencode.js"
import { compiledLibrary, repoRoot } from "../support/tmp.js"
import { seedExpiredLogin } from "../support/tokens.js"
import { record } from "./support.js"

const REFRESHES = 20
const STORMS = 5
const STORM_PROCESSES = 8
const STORM_CALLERS = 50
const CRASH_ITERATIONS = Math.max(20, Number(process.env["KIMI_BUN_CRASH_ITERATIONS"] ?? 100))
const CRASH_LANES = 4
const dist = path.join(repoRoot, "dist")

let bun = ""
let bunVersion = ""
let home = ""
let emu: StartedEmulator | undefined

beforeAll(async () => {
  if (skipOpencode) return
  bun = (await ensureOpencode()).path
  bunVersion = (await runBun(["--version"], {})).stdout.trim()
}, INSTALL_TIMEOUT_MS)
beforeEach(() => {
  home = makeTemp("kimi-faults-bun-")
})
afterEach(async () => {
  await emu?.close()
  emu = undefined
  rmTemp(home)
})

interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Spawns OpenCode's Bun (`BUN_BE_BUN=1 opencode …`) with `args`. */
const spawnBun = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): ChildProcess =>
  spawn(bun, [...args], { cwd: repoRoot, env: { ...process.env, ...env, BUN_BE_BUN: "1" }, stdio: ["pipe", "pipe", "pipe"] })

/** Runs OpenCode's Bun to its end (SIGKILL after 60 s). */
const runBun = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawnBun(args, env)
    child.stdin!.end()
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

const storageOf = (h: string) => path.join(h, ".opencode-kimi-auth")
const tokenFileOf = (h: string) => path.join(storageOf(h), "oauth.json")
const nowSeconds = () => Math.floor(Date.now() / 1000)

/** Writes a token file whose access token expired a minute ago. */
const seedExpired = (storage: string, access: string, refresh: string) => seedExpiredLogin(path.join(storage, "oauth.json"), { access, refresh })

/** Makes the stored access token expired (atomic rewrite). */
const expireOnDisk = (file: string) => {
  const j = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>
  const tmp = `${file}.test-${process.pid}.tmp`
  fs.writeFileSync(tmp, JSON.stringify({ ...j, expires_at: nowSeconds() - 60 }), { mode: 0o600 })
  fs.renameSync(tmp, file)
}

type FileState = { readonly kind: "missing" } | { readonly kind: "spaces" } | { readonly kind: "unparsable" } | {
  readonly kind: "ok"
  readonly access: string
  readonly refresh: string
  readonly expiresAt: number
}

/** The token file as the library reads it (the real decoder). */
const readState = async (file: string): Promise<FileState> => {
  if (!fs.existsSync(file)) return { kind: "missing" }
  const text = fs.readFileSync(file, "utf8")
  if (/^\s*$/.test(text)) return { kind: "spaces" }
  const decoded = await Effect.runPromise(Effect.result(decodeTokenFile(text)))
  if (decoded._tag === "Failure") return { kind: "unparsable" }
  const t = decoded.success.tokens
  return { kind: "ok", access: Redacted.value(t.accessToken), refresh: Redacted.value(t.refreshToken), expiresAt: t.expiresAt }
}

const corruptCopies = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.includes(".corrupt-")).length : 0)

describe.skipIf(skipOpencode)("the plugin's runtime: OpenCode's Bun", () => {
  it(`refresh: ${REFRESHES} refreshes by kimi-auth token and the facade under Bun, each rotated and stored`, async () => {
    emu = await start({ interval: 1 })
    const issued = emu.issueTokens()
    seedExpired(storageOf(home), issued.accessToken, issued.refreshToken)
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: emu.url })
    const file = tokenFileOf(home)
    const stats = { ok: 0, spaces: 0, unparsable: 0, missing: 0, notRotated: 0, failedRuns: 0, corrupt: 0, cli: 0, facade: 0 }
    let previous = issued.refreshToken
    for (let i = 0; i < REFRESHES; i++) {
      if (i > 0) expireOnDisk(file)
      const viaCli = i % 2 === 0
      const r = viaCli
        ? await runBun([cliPath, "token"], env)
        : await runBun([path.join(repoRoot, "test", "fixtures", "facade-token.mjs"), dist, emu.url, storageOf(home)], env)
      // `kimi-auth token` prints the token itself, by design: only its stderr goes to the secret scan.
      record("bun-refresh", (viaCli ? "" : r.stdout) + r.stderr)
      const served = viaCli ? r.code === 0 && r.stdout.trim() !== "" : r.code === 0 && (JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as { ok?: boolean }).ok === true
      if (!served) stats.failedRuns++
      const state = await readState(file)
      if (state.kind !== "ok") stats[state.kind]++
      else if (state.refresh === previous) stats.notRotated++
      else {
        stats.ok++
        stats[viaCli ? "cli" : "facade"]++
        previous = state.refresh
      }
      if (state.kind !== "ok") break // the login is gone: the next run could only say so
    }
    stats.corrupt = corruptCopies(storageOf(home))
    const server = emu.stats()
    const summary = `bun ${bunVersion}; refreshes ok ${stats.ok}/${REFRESHES} (cli ${stats.cli}, facade ${stats.facade}), failed runs ${stats.failedRuns}, ` +
      `files of spaces ${stats.spaces}, unparsable ${stats.unparsable}, missing ${stats.missing}, not rotated ${stats.notRotated}, ` +
      `corrupt copies ${stats.corrupt}; server: refreshes ${server.refreshes}, replays ${server.spentTokenReplays}, families revoked ${server.familiesRevoked}`
    console.log(`fault bun refresh: ${summary}`)
    expect(stats.ok, summary).toBe(REFRESHES)
    expect(stats.failedRuns + stats.spaces + stats.unparsable + stats.missing + stats.corrupt, summary).toBe(0)
    expect(server.refreshes, summary).toBe(REFRESHES)
    expect(server.spentTokenReplays + server.familiesRevoked, summary).toBe(0)
  })

  it(`storm: ${STORMS} storms of ${STORM_PROCESSES} Bun processes x ${STORM_CALLERS} callers, one refresh each`, async () => {
    emu = await start({ interval: 1 })
    const caller = path.join(repoRoot, "test", "fixtures", "storm-caller.mjs")
    const lines: Array<string> = []
    let rejected = 0
    let split = 0
    let bad = 0
    for (let s = 0; s < STORMS; s++) {
      const storage = path.join(home, `storm-${s}`)
      const issued = emu.issueTokens()
      seedExpired(storage, issued.accessToken, issued.refreshToken)
      const before = emu.stats().refreshes
      const children = Array.from({ length: STORM_PROCESSES }, () => spawnBun([caller, dist, String(STORM_CALLERS), storage, emu!.url], {}))
      const outputs = children.map((child) => {
        let out = ""
        let err = ""
        child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c))
        child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c))
        const ready = new Promise<void>((resolve, reject) => {
          const t = setInterval(() => out.includes("ready\n") && (clearInterval(t), resolve()), 5)
          child.on("close", (code) => (clearInterval(t), reject(new Error(`storm caller ended (${code}) before ready: ${err}`))))
        })
        const done = new Promise<string>((resolve) => child.on("close", () => resolve(out + err)))
        const guard = setTimeout(() => child.kill("SIGKILL"), 60_000)
        child.on("close", () => clearTimeout(guard))
        return { child, ready, done }
      })
      await Promise.all(outputs.map((o) => o.ready))
      const t = performance.now()
      for (const o of outputs) o.child.stdin!.end("go\n")
      const texts = await Promise.all(outputs.map((o) => o.done))
      const millis = Math.round(performance.now() - t)
      record("bun-storm", texts.join(""))
      const results = texts.map((text) => JSON.parse(text.split("\n").filter((l) => l.startsWith("{")).pop() ?? "{}") as { ok?: number; failed?: number; fingerprints?: Array<string> })
      const refreshes = emu.stats().refreshes - before
      const fingerprints = new Set(results.flatMap((r) => r.fingerprints ?? []))
      rejected += results.reduce((n, r) => n + (r.failed ?? STORM_CALLERS), 0)
      if (fingerprints.size !== 1) split++
      const state = await readState(path.join(storage, "oauth.json"))
      if (state.kind !== "ok" || state.refresh === issued.refreshToken || corruptCopies(storage) > 0) bad++
      lines.push(`storm ${s + 1}: ${refreshes} refresh${refreshes === 1 ? "" : "es"}, ${results.reduce((n, r) => n + (r.ok ?? 0), 0)} served, ${millis} ms`)
      expect(refreshes, lines.join("; ")).toBe(1)
    }
    const server = emu.stats()
    const summary = `bun ${bunVersion}; ${lines.join("; ")}; rejected ${rejected}, storms with more than one token ${split}, ` +
      `token files not rotated/unreadable ${bad}; server: replays ${server.spentTokenReplays}, families revoked ${server.familiesRevoked}`
    console.log(`fault bun storm: ${summary}`)
    expect(rejected + split + bad, summary).toBe(0)
    expect(server.spentTokenReplays + server.familiesRevoked, summary).toBe(0)
  })

  it(`crash: SIGKILL during a refresh's save and a plain save under Bun (${CRASH_ITERATIONS} kills each): 0 unparsable, 0 lost`, async () => {
    const lib = compiledLibrary()
    const writer = path.join(repoRoot, "test", "fixtures", "store-writer.mjs")
    const killOnce = (dir: string, mode: string, delay: number) =>
      new Promise<{ signal: NodeJS.Signals | null; output: string }>((resolve, reject) => {
        const child = spawnBun([writer, lib, dir, mode], {})
        child.stdin!.end()
        let output = ""
        const guard = setTimeout(() => {
          child.kill("SIGKILL")
          reject(new Error(`writer never became ready:\n${output}`))
        }, 30_000)
        child.stderr!.setEncoding("utf8").on("data", (c: string) => (output += c))
        child.stdout!.setEncoding("utf8").on("data", (c: string) => {
          output += c
          if (output.includes("ready\n")) setTimeout(() => child.kill("SIGKILL"), delay)
        })
        child.on("close", (_code, signal) => {
          clearTimeout(guard)
          resolve({ signal, output })
        })
      })
    const lines: Array<string> = []
    let failures = 0
    for (const mode of ["refresh", "save"]) {
      const stats = { kills: 0, spaces: 0, unparsable: 0, lost: 0, mixed: 0, corrupt: 0, seen: new Set<string>() }
      const lane = async (n: number) => {
        const dir = path.join(home, `${mode}-${n}`)
        for (let i = n; i < CRASH_ITERATIONS; i += CRASH_LANES) {
          const { signal, output } = await killOnce(dir, mode, Math.floor(Math.random() * 40))
          record("bun-crash-writers", output.replace("ready\n", ""))
          expect(signal, output).toBe("SIGKILL")
          stats.kills++
          const state = await readState(path.join(dir, "oauth.json"))
          if (state.kind === "missing") stats.lost++
          else if (state.kind === "spaces") stats.spaces++
          else if (state.kind === "unparsable") stats.unparsable++
          else {
            const name = state.expiresAt === 1_700_000_000 ? "old" : state.expiresAt === 1_800_000_000 ? "new" : "?"
            if (name === "?" || !state.access.startsWith(`at-${name}-`) || !state.refresh.startsWith(`rt-${name}-`)) stats.mixed++
            else stats.seen.add(name)
          }
          stats.corrupt = Math.max(stats.corrupt, corruptCopies(dir))
        }
      }
      await Promise.all(Array.from({ length: CRASH_LANES }, (_, n) => lane(n)))
      failures += stats.spaces + stats.unparsable + stats.lost + stats.mixed + stats.corrupt + (stats.seen.size === 2 ? 0 : 1)
      lines.push(`${mode}: kills ${stats.kills}, files of spaces ${stats.spaces}, unparsable ${stats.unparsable}, lost logins ${stats.lost}, ` +
        `mixed sets ${stats.mixed}, corrupt files ${stats.corrupt}, sets seen ${[...stats.seen].sort().join("+")}`)
    }
    const summary = `bun ${bunVersion}; ${lines.join("; ")}`
    console.log(`fault bun crash: ${summary}`)
    expect(failures, summary).toBe(0)
  })
})
