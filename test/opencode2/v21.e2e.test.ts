/**
 * The real plugin inside the real OpenCode 2.1.2 (`@opencode/cli-linux-x64`,
 * installed by test/support/opencode2.ts), against the Kimi emulator on
 * loopback, as a 2.1 user works: the checkout folder listed in `plugins`,
 * `opencode auth login <provider> --method kimi-device`, `run`, `auth
 * logout`, `auth export` / `import`. Every command is `--standalone`.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { ACCOUNT_ONLY_MODEL_ID } from "../../src/emulator/Models.js"
import { isolatedEnv, repoRoot, runCli } from "../support/cli.js"
import { ensureOpencode, makeOpencodeEnv } from "../support/opencode.js"
import {
  EMULATOR_GREETING as GREETING,
  KIMI_CN as CN,
  type V2Env,
  v21Plugin,
  v21SuiteMissing,
  v21Suite
} from "../support/opencode2.js"

const MARKER = "opencode-kimi-auth:token-file"
const TEST_TIMEOUT = 240_000
const missing = v21SuiteMissing("suite")

describe.skipIf(missing !== undefined)("opencode-kimi-auth inside OpenCode 2.1.2", () => {
  const suite = v21Suite()
  const envs = suite.envs
  const world = async (env: Record<string, string> = {}) => {
    const e = await suite.world(env)
    return { e, tokenFile: path.join(e.home, ".opencode-kimi-auth", "oauth.json") }
  }
  const readTokens = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))
  const chats = () => suite.emulator.requests("/coding/v1/chat/completions")
  const login = async (e: V2Env, provider = CN) => {
    const r = await e.login(provider)
    expect(r.code, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`).toBe(0)
    expect(r.stdout).toContain("Connected to")
    return r
  }
  const answered = (r: { stdout: string; stderr: string }, e: V2Env) =>
    expect(r.stdout, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`).toContain(GREETING)

  it("auth login --method kimi-device: the row holds the marker, never the refresh token; every call carries our bearer and the X-Msh headers", async () => {
    const { e, tokenFile } = await world()
    const r = await login(e)
    expect(r.stdout).toMatch(/Enter code: [A-Z0-9]{4}-[A-Z0-9]{4}/)
    const stored = readTokens(tokenFile)
    const rows = await e.credentials()
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ integration_id: CN, active: true })
    expect(rows[0]!.value).toMatchObject({ type: "oauth", methodID: "kimi-device", refresh: MARKER, access: stored.access_token })
    expect(e.databaseBytes()).not.toContain(stored.refresh_token)
    suite.emulator.clearRequests()
    const run = await e.run(`${CN}/kimi-for-coding`, "Say hello")
    answered(run, e)
    // the title call and the answer both pass the hooks in 2.1.2
    expect(chats().length).toBeGreaterThanOrEqual(2)
    for (const c of chats()) {
      expect(c.bearer).toBe(stored.access_token)
      expect(c.msh.platform).toBe("kimi_cli")
      expect(c.msh.deviceId).toBe(stored.device_id ?? fs.readFileSync(path.join(path.dirname(tokenFile), "device_id"), "utf8").trim())
      expect(c.userAgent).toMatch(/^KimiCLI\//)
    }
  }, TEST_TIMEOUT)

  it("a streamed answer reaches the host's clients as Kimi writes it: through our hooks, no chunk is held back (the event stream the TUI reads)", async () => {
    const { e, tokenFile } = await world()
    await login(e)
    const server = await e.serve()
    // A slow model: 300 ms between the chunks of every streamed answer (about 10 chunks).
    suite.emulator.setFaults({ chunkDelayMillis: 300 })
    try {
      suite.emulator.clearRequests()
      const r = await e.cli(["run", "--server", server.url, "-m", `${CN}/kimi-for-coding`, "Say hello"], { env: server.clientEnv })
      answered(r, e)
    } finally {
      suite.emulator.setFaults({})
    }
    // The answer passed our http.request / http.response hooks: our bearer and identity on the wire.
    const answer = chats().find((c) => JSON.stringify(c.json).includes('"stream":true'))
    expect(answer?.bearer).toBe(readTokens(tokenFile).access_token)
    expect(answer?.msh.platform).toBe("kimi_cli")
    const deltas = server.events().filter((x) => x.event.type === "session.text.delta")
    expect(deltas.map((x) => x.event.data.delta).join("")).toContain(GREETING)
    // Passed on as it arrives: the deltas reach the client over the answer's whole duration (buffered, they would
    // arrive within a few ms of each other, after the last chunk). A loaded machine only spreads them further.
    expect(deltas.length).toBeGreaterThanOrEqual(3)
    expect(deltas.at(-1)!.at - deltas[0]!.at).toBeGreaterThan(1_200)
  }, TEST_TIMEOUT)

  it("#off reaches Kimi as thinking disabled, #high as thinking enabled with its effort, and the account's own model answers", async () => {
    const { e } = await world()
    await login(e)
    const bodyOf = async (model: string) => {
      suite.emulator.clearRequests()
      const r = await e.run(model, "Say hello")
      answered(r, e)
      return chats().at(-1)!.json as Record<string, unknown>
    }
    const off = await bodyOf(`${CN}/kimi-for-coding#off`)
    expect(off["thinking"]).toEqual({ type: "disabled" })
    expect(off).not.toHaveProperty("reasoning_effort")
    const high = await bodyOf(`${CN}/kimi-for-coding#high`)
    expect(high["thinking"]).toEqual({ type: "enabled", effort: "high" })
    // the login read the account's models (GET /models) into the cache the next start reads
    const own = await bodyOf(`${CN}/${ACCOUNT_ONLY_MODEL_ID}`)
    expect(own["model"]).toBe(ACCOUNT_ONLY_MODEL_ID)
  }, TEST_TIMEOUT)

  it("a used-up quota: the message names its reset, the host's retry is stopped (one call), no refresh", async () => {
    const { e } = await world()
    await login(e)
    suite.emulator.setQuota({ refusal: 429 })
    suite.emulator.exhaustQuota()
    suite.emulator.clearRequests()
    const refreshes = suite.emulator.stats().refreshes
    try {
      const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 60_000 })
      const out = `${r.stdout}\n${r.stderr}`
      expect(r.timedOut).toBe(false)
      expect(out).toContain("usage limit is used up")
      expect(out).toMatch(/resets/)
      // the title call and the answer: one each, never retried
      expect(chats().length).toBeLessThanOrEqual(2)
      expect(suite.emulator.stats().refreshes).toBe(refreshes)
    } finally {
      suite.emulator.setQuota({ refusal: 403 })
      suite.emulator.resetQuota()
    }
  }, TEST_TIMEOUT)

  it("a configuration the plugin refuses (a plain-http OAuth host off loopback): the message, and the host's retries stopped (2.1's retry decision)", async () => {
    const { e } = await world()
    await login(e)
    const config = JSON.parse(fs.readFileSync(e.configFile, "utf8"))
    config.plugins = [{ package: v21Plugin(), options: { oauthHost: "http://kimi.example.com" } }]
    fs.writeFileSync(e.configFile, JSON.stringify(config))
    suite.emulator.clearRequests()
    const started = Date.now()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 90_000 })
    const out = `${r.stdout}\n${r.stderr}`
    expect(r.stdout).not.toContain(GREETING)
    expect(out).toContain("kimi.example.com")
    // without the decision the host retries a 500 five times over ~25 s
    expect(chats().length, out).toBeLessThanOrEqual(2)
    expect(Date.now() - started).toBeLessThan(20_000)
  }, TEST_TIMEOUT)

  it("a 401 on a token believed valid: one refresh under the package's lock, one resend, the answer; the row keeps the marker", async () => {
    const { e, tokenFile } = await world()
    await login(e)
    const before = readTokens(tokenFile)
    const refreshes = suite.emulator.stats().refreshes
    suite.emulator.expireAccessTokens()
    suite.emulator.clearRequests()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello")
    answered(r, e)
    expect(suite.emulator.stats().refreshes - refreshes).toBe(1)
    expect(suite.emulator.stats().spentTokenReplays).toBe(0)
    const after = readTokens(tokenFile)
    expect(after.refresh_token).not.toBe(before.refresh_token)
    expect(chats().filter((c) => c.status === 200).every((c) => c.bearer === after.access_token)).toBe(true)
    for (const row of await e.credentials()) expect(row.value.refresh).toBe(MARKER)
  }, TEST_TIMEOUT)

  it("auth logout of the only Kimi row: the next run sends no Kimi login and says how to log in (the package's login is not used behind the host's back)", async () => {
    const { e } = await world()
    await login(e)
    const [row] = await e.credentials()
    const out = await e.cli(["auth", "logout", CN, row!.id, "--standalone"])
    expect(out.code, `${out.stdout}\n${out.stderr}`).toBe(0)
    expect(await e.credentials()).toEqual([])
    suite.emulator.clearRequests()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 60_000 })
    expect(r.stdout).not.toContain(GREETING)
    expect(`${r.stdout}\n${r.stderr}`).toContain(`opencode auth login ${CN} --method kimi-device`)
    expect(chats()).toEqual([])
  }, TEST_TIMEOUT)

  it("auth export holds no refresh token; the row imported on another machine says a rotating login cannot be copied, and its access token is never sent", async () => {
    const { e, tokenFile } = await world()
    await login(e)
    const stored = readTokens(tokenFile)
    const exported = await e.cli(["auth", "export", CN, "--standalone"])
    expect(exported.code, exported.stderr).toBe(0)
    expect(exported.stdout).toContain(MARKER)
    expect(exported.stdout).not.toContain(stored.refresh_token)
    const json = exported.stdout.slice(exported.stdout.indexOf("["), exported.stdout.lastIndexOf("]") + 1)
    // another machine: its own OpenCode and its own (empty) package store
    const other = await world()
    const file = path.join(other.e.root, "export.json")
    fs.writeFileSync(file, json)
    const imported = await other.e.cli(["auth", "import", file, "--standalone"])
    expect(imported.code, `${imported.stdout}\n${imported.stderr}`).toBe(0)
    suite.emulator.clearRequests()
    const r = await other.e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 60_000 })
    const out = `${r.stdout}\n${r.stderr}`
    expect(r.stdout).not.toContain(GREETING)
    expect(out).toContain("cannot be copied between machines")
    expect(out).toContain(`opencode auth login ${CN} --method kimi-device`)
    expect(chats().filter((c) => c.bearer === stored.access_token)).toEqual([])
  }, TEST_TIMEOUT)

  it("an expired login hit at once from OpenCode 2.1.2 (run), OpenCode 1.18.33 (run) and the CLI (kimi-auth token): 1 refresh, 0 reuse", async () => {
    await ensureOpencode()
    const { e, tokenFile } = await world()
    await login(e)
    // The same user's OpenCode 1.18.33 and CLI: the same package token file; 1.18.33 in its own data folder.
    const storage = path.dirname(tokenFile)
    const v1 = await makeOpencodeEnv({
      plugin: repoRoot,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage }
    })
    envs.push(v1)
    expect(v1.dataDir).not.toBe(e.dataDir)
    const stored = readTokens(tokenFile)
    fs.writeFileSync(tokenFile, JSON.stringify({ ...stored, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    suite.emulator.expireAccessTokens()
    suite.emulator.clearRequests()
    const { refreshes, familiesRevoked, spentTokenReplays } = suite.emulator.stats()
    const cliEnv = isolatedEnv(e.home, { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage })
    const [v2run, v1run, cli] = await Promise.all([
      e.run(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 }),
      v1.prompt(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 }),
      runCli(["token"], cliEnv, { timeoutMs: 60_000 })
    ])
    answered(v2run, e)
    expect(v1run.stdout, v1run.stderr).toContain(GREETING)
    expect(cli.code, cli.stderr).toBe(0)
    const after = readTokens(tokenFile)
    expect(cli.stdout.trim()).toBe(after.access_token)
    expect(suite.emulator.stats().refreshes - refreshes).toBe(1)
    expect(suite.emulator.requests("/api/oauth/token").filter((x) => x.form?.["grant_type"] === "refresh_token")).toHaveLength(1)
    expect(suite.emulator.stats().spentTokenReplays - spentTokenReplays).toBe(0)
    expect(suite.emulator.stats().familiesRevoked - familiesRevoked).toBe(0)
    for (const row of await e.credentials()) expect(row.value.refresh).toBe(MARKER)
  }, TEST_TIMEOUT)
})
