/**
 * The Kimi device login completed through the OpenCode 2.0 preview's own
 * front ends (test/support/opencode2.ts), not through our HTTP calls:
 *
 * - its CLI: `opencode2 auth login` only knows well-known providers (a URL
 *   serving `/.well-known/opencode`), so it cannot reach a provider's OAuth
 *   method — pinned below; the CLI route that does is `opencode2 api`, which
 *   starts the host's background service and drives its HTTP API;
 * - its TUI: `/connect` → "Connect a service" → the provider → "Kimi device
 *   login", driven in a real terminal (tmux), until the TUI says "Connected".
 *
 * Each path then shows `run` answering with the stored login, and the
 * credential row holding the marker instead of a refresh token.
 * Skipped, with the reason, when the preview's .xz is not there (and the TUI
 * case when tmux is not installed).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { repoRoot } from "../support/cli.js"
import { ensurePreview, INSTALL_TIMEOUT_MS, makeV2Env, previewMissing, type V2Env } from "../support/opencode2.js"

const CN = "kimi-code-plan-cn"
const GLOBAL = "kimi-code-plan-global"
const MARKER = "opencode-kimi-auth:token-file"
const TIMEOUT = 240_000
const plugin = path.join(repoRoot, "server.js")
const missing = previewMissing()
if (missing !== undefined) console.warn(`skipping the OpenCode 2 preview CLI/TUI login suite: ${missing}`)
const hasTmux = process.platform !== "win32" && spawnSync("tmux", ["-V"], { encoding: "utf8" }).status === 0
if (missing === undefined && !hasTmux) console.warn("skipping the OpenCode 2 TUI login case: tmux is not installed (apt-get install tmux)")

/** The names the preview's catalog gives the two providers (what its TUI lists). */
const NAMES: Record<string, string> = { [CN]: "Kimi For Coding (kimi.com)", [GLOBAL]: "Kimi For Coding (kimi.ai)" }

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

describe.skipIf(missing !== undefined)("the Kimi device login through the OpenCode 2.0 preview's CLI and TUI", () => {
  let bin: string
  let emulator: StartedEmulator
  const cleanups: Array<() => Promise<void>> = []

  beforeAll(async () => {
    expect(fs.existsSync(path.join(repoRoot, "dist", "bundle", "server-v2.js")), "run `npm run build` first").toBe(true)
    bin = await ensurePreview()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 1000 })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  /**
   * Every host process of this world still alive (the background service the
   * CLI starts, the TUI's private server): found by its environment, which
   * names the world's own data folder, and killed by pid.
   */
  const killWorld = (e: V2Env) => {
    const mark = `XDG_DATA_HOME=${e.env["XDG_DATA_HOME"]}\0`
    for (const pid of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
      try {
        if (Number(pid) === process.pid) continue
        if (!`${fs.readFileSync(`/proc/${pid}/environ`, "latin1")}\0`.includes(mark)) continue
        process.kill(Number(pid), "SIGKILL")
      } catch {}
    }
  }

  const world = async () => {
    const e = await makeV2Env({
      bin,
      plugin,
      apiBaseUrl: emulator.apiBaseUrl,
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    cleanups.push(async () => {
      killWorld(e)
      await e.dispose()
    })
    return { e, tokenFile: path.join(e.home, ".opencode-kimi-auth", "oauth.json") }
  }

  /** `opencode2 <args>` in the world's project folder, with its environment. */
  const host = (e: V2Env, args: ReadonlyArray<string>, timeoutMs = 60_000) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child: ChildProcess = spawn(bin, args, { cwd: e.projectDir, env: e.env, stdio: ["ignore", "pipe", "pipe"] })
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()))
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()))
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
      child.on("close", (code) => {
        clearTimeout(timer)
        resolve({ code, stdout, stderr })
      })
    })

  /** What a successful login must leave: the package's file, a row with the marker, no refresh token in the database. */
  const expectStoredLogin = async (e: V2Env, tokenFile: string, provider: string, region: string) => {
    const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8"))
    expect(stored.region).toBe(region)
    const rows = (await e.credentials()).filter((r) => r.integration_id === provider)
    expect(rows).toHaveLength(1)
    expect(rows[0]!.value).toMatchObject({ type: "oauth", methodID: "kimi-device", refresh: MARKER, access: stored.access_token })
    expect(e.databaseBytes()).not.toContain(stored.refresh_token)
    return stored
  }

  /** `run --standalone` answers with the stored login, its session calls carrying the stored bearer. */
  const expectRunAnswers = async (e: V2Env, provider: string, accessToken: string) => {
    emulator.clearRequests()
    const r = await e.run(`${provider}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 })
    expect(r.stdout, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-4000)}`).toContain("Hello from the Kimi emulator")
    const hooked = emulator.requests("/coding/v1/chat/completions").filter((c) => c.msh.platform !== undefined)
    expect(hooked.length).toBeGreaterThanOrEqual(1)
    for (const c of hooked) expect(c.bearer).toBe(accessToken)
  }

  it("`opencode2 auth login` cannot reach a provider's OAuth method: it only loads a well-known manifest from a URL", async () => {
    const { e, tokenFile } = await world()
    const help = await host(e, ["auth", "login", "--help"])
    expect(help.stdout).toContain("opencode2 auth login [flags] <url>")
    expect(help.stdout).toContain("Well-known provider URL")
    const before = emulator.deviceCodes().length
    const r = await host(e, ["auth", "login", CN])
    await host(e, ["service", "stop"])
    expect(r.code).not.toBe(0)
    expect(`${r.stdout}\n${r.stderr}`).toContain(`Failed to load wellknown manifest from ${CN}/.well-known/opencode`)
    // nothing of ours ran
    expect(emulator.deviceCodes().length).toBe(before)
    expect(fs.existsSync(tokenFile)).toBe(false)
  }, TIMEOUT)

  it.each([
    { provider: CN, region: "mainland-cn" },
    { provider: GLOBAL, region: "global" }
  ])("logs in on $provider with the host's CLI (`opencode2 api` against its background service); run then answers", async ({ provider, region }) => {
    const { e, tokenFile } = await world()
    const before = emulator.deviceCodes().length
    try {
      // The integration lists our method through the CLI too (plugins load on the service's first request: poll).
      const until = Date.now() + 60_000
      for (;;) {
        const r = await host(e, ["api", "GET", `/api/integration/${provider}`])
        if (r.stdout.includes(`"id":"kimi-device"`)) break
        if (Date.now() > until) throw new Error(`the method never appeared: ${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`)
        await sleep(500)
      }
      const started = await host(e, ["api", "POST", `/api/integration/${provider}/connect/oauth`, "-d", JSON.stringify({ methodID: "kimi-device", inputs: {} })])
      expect(started.code, started.stderr).toBe(0)
      const attempt = JSON.parse(started.stdout).data
      const code = emulator.deviceCodes()[before]!
      expect(attempt).toMatchObject({ mode: "auto", url: `${emulator.url}/device?user_code=${code.userCode}` })
      expect(attempt.instructions).toContain(code.userCode)
      expect(attempt.time.expires - attempt.time.created).toBeGreaterThan(850_000)
      // The attempt completes inside the background service once the emulator approves (1 s).
      for (;;) {
        const r = await host(e, ["api", "GET", `/api/integration/${provider}`])
        if (/"connections":\[\{/.test(r.stdout)) break
        if (Date.now() > until + 60_000) throw new Error(`never connected: ${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`)
        await sleep(500)
      }
    } finally {
      await host(e, ["service", "stop"])
    }
    const stored = await expectStoredLogin(e, tokenFile, provider, region)
    await expectRunAnswers(e, provider, stored.access_token)
  }, TIMEOUT)

  it.skipIf(!hasTmux).each([
    { provider: GLOBAL, region: "global" },
    { provider: CN, region: "mainland-cn" }
  ])("logs in on $provider in the host's TUI (/connect → Kimi device login, in tmux); run then answers", async ({ provider, region }) => {
    const { e, tokenFile } = await world()
    const socket = path.join(e.root, "tmux.sock")
    const tmux = (...args: ReadonlyArray<string>) =>
      spawnSync("tmux", ["-S", socket, ...args], { encoding: "utf8", env: { ...e.env, TERM: "xterm-256color" } })
    const screen = () => tmux("capture-pane", "-p", "-t", "tui").stdout ?? ""
    const waitFor = async (what: string | RegExp, timeoutMs = 60_000) => {
      const until = Date.now() + timeoutMs
      for (;;) {
        const s = screen()
        if (typeof what === "string" ? s.includes(what) : what.test(s)) return s
        if (Date.now() > until) throw new Error(`the TUI never showed ${what}; screen:\n${s}\nlogs: ${e.logs().slice(-3000)}`)
        await sleep(250)
      }
    }
    cleanups.push(async () => void tmux("kill-server"))
    const before = emulator.deviceCodes().length
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    const started = tmux("new-session", "-d", "-s", "tui", "-x", "160", "-y", "45", "-c", e.projectDir, `exec ${quote(bin)} --standalone`)
    expect(started.status, started.stderr).toBe(0)
    await waitFor("ctrl+p commands")
    tmux("send-keys", "-t", "tui", "-l", "/connect")
    await waitFor("/connect")
    tmux("send-keys", "-t", "tui", "Enter")
    await waitFor("Connect a service")
    // Search narrows the list to the one provider; its methods are ours and the API key.
    tmux("send-keys", "-t", "tui", "-l", NAMES[provider]!.replace(/^.*\(/, "").replace(")", ""))
    await waitFor(NAMES[provider]!)
    tmux("send-keys", "-t", "tui", "Enter")
    const methods = await waitFor(`Connect ${NAMES[provider]!}`)
    expect(methods).toContain("Kimi device login")
    tmux("send-keys", "-t", "tui", "-l", "device")
    await sleep(500)
    tmux("send-keys", "-t", "tui", "Enter")
    const shown = await waitFor(/user_code=[A-Z0-9]{4}-[A-Z0-9]{4}/)
    const code = emulator.deviceCodes()[before]!
    // The dialog shows our URL and instructions (code, and the device code's 15 min lifetime).
    expect(shown).toContain(`${emulator.url}/device?user_code=${code.userCode}`)
    expect(shown).toContain(`Enter code: ${code.userCode}`)
    expect(shown).toContain("expires in 15 min")
    await waitFor(`Connected ${NAMES[provider]!}`)
    tmux("kill-server")
    killWorld(e)
    const stored = await expectStoredLogin(e, tokenFile, provider, region)
    await expectRunAnswers(e, provider, stored.access_token)
  }, TIMEOUT)
})
