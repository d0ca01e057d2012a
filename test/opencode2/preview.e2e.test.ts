/**
 * The real plugin inside the real OpenCode 2.0 preview (upstream's `v2`
 * branch, compiled; test/support/opencode2.ts), against the Kimi emulator on
 * loopback. The plugin is listed as the checkout's `server.js` (what a local
 * checkout uses in OpenCode 2; test/opencode/NOTES.md, "OpenCode 2"), which
 * is the bundle `exports["./server"]` serves under the `bun` condition.
 * Skipped, with the reason, when the preview's .xz is not there.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { ACCOUNT_ONLY_MODEL_ID } from "../../src/emulator/Models.js"
import { isolatedEnv, repoRoot, runCli } from "../support/cli.js"
import { ensureOpencode, makeOpencodeEnv, type OpencodeEnv } from "../support/opencode.js"
import { ensurePreview, INSTALL_TIMEOUT_MS, makeV2Env, previewMissing, type V2Env } from "../support/opencode2.js"

const CN = "kimi-code-plan-cn"
const GLOBAL = "kimi-code-plan-global"
const MARKER = "opencode-kimi-auth:token-file"
const RUN_TIMEOUT = 180_000
const plugin = path.join(repoRoot, "server.js")
const missing = previewMissing()
if (missing !== undefined) console.warn(`skipping the OpenCode 2 preview suite: ${missing}`)

describe.skipIf(missing !== undefined)("opencode-kimi-auth inside the OpenCode 2.0 preview", () => {
  let bin: string
  let emulator: StartedEmulator
  const envs: Array<V2Env | OpencodeEnv> = []

  beforeAll(async () => {
    expect(fs.existsSync(path.join(repoRoot, "dist", "bundle", "server-v2.js")), "run `npm run build` first").toBe(true)
    bin = await ensurePreview()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 1000 })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  const world = async () => {
    const e = await makeV2Env({
      bin,
      plugin,
      apiBaseUrl: emulator.apiBaseUrl,
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    envs.push(e)
    return { e, tokenFile: path.join(e.home, ".opencode-kimi-auth", "oauth.json") }
  }
  const readTokens = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))

  /** Logs in over the host's HTTP API (what its TUI and CLI call), as a user would. */
  const login = async (e: V2Env, provider: string) => {
    const server = await e.serve()
    const methods = await server.waitForIntegration(provider, (d) => d.methods.some((m: any) => m.id === "kimi-device"))
    const before = emulator.deviceCodes().length
    const attempt = await server.api("POST", `/api/integration/${provider}/connect/oauth`, { methodID: "kimi-device", inputs: {} })
    expect(attempt.status, attempt.text).toBe(200)
    await server.waitForIntegration(provider, (d) => d.connections.length > 0)
    return { server, methods, attempt: attempt.json.data, code: emulator.deviceCodes()[before]! }
  }

  it.each([
    { provider: CN, region: "mainland-cn" },
    { provider: GLOBAL, region: "global" }
  ])("logs in on $provider through the host's HTTP API (connect/oauth), the row holds no refresh token, and run answers with the X-Msh headers", async ({ provider, region }) => {
    const { e, tokenFile } = await world()
    const { server, methods, attempt, code } = await login(e, provider)
    expect(methods.methods).toContainEqual({ id: "kimi-device", type: "oauth", label: "Kimi device login" })
    expect(attempt).toMatchObject({ mode: "auto", url: `${emulator.url}/device?user_code=${code.userCode}` })
    expect(attempt.instructions).toContain(code.userCode)
    // expiresAt reached the host: the attempt expires with the device code (900 s), not the host's default.
    expect(attempt.time.expires - attempt.time.created).toBeGreaterThan(850_000)
    const stored = readTokens(tokenFile)
    expect(stored.region).toBe(region)
    const rows = await e.credentials()
    expect(rows).toHaveLength(1)
    expect(rows[0]!.integration_id).toBe(provider)
    expect(rows[0]!.value).toMatchObject({ type: "oauth", methodID: "kimi-device", refresh: MARKER, access: stored.access_token })
    expect(e.databaseBytes()).not.toContain(stored.refresh_token)

    emulator.clearRequests()
    const r = await e.run(`${provider}/kimi-for-coding`, "Say hello", { server })
    expect(r.stdout, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-4000)}`).toContain("Hello from the Kimi emulator")
    const chats = emulator.requests("/coding/v1/chat/completions")
    expect(chats.length).toBeGreaterThanOrEqual(1)
    for (const c of chats) expect(c.bearer).toBe(stored.access_token)
    // The session's model calls pass the http.request hook (the title request does not: NOTES.md).
    const hooked = chats.filter((c) => c.msh.platform !== undefined)
    expect(hooked.length).toBeGreaterThanOrEqual(1)
    for (const c of hooked) {
      expect(c.msh.platform).toBe("kimi_cli")
      expect(c.msh.deviceId).toBe(stored.device_id)
      expect(c.userAgent).toMatch(/^KimiCLI\//)
    }
    await server.stop()
  }, RUN_TIMEOUT)

  it("translates thinking variants as in V1: #high, #off and the default", async () => {
    const { e } = await world()
    const { server } = await login(e, CN)
    const bodyOf = async (model: string) => {
      emulator.clearRequests()
      const r = await e.run(model, "Say hello", { server })
      expect(r.stdout, r.stderr).toContain("Hello from the Kimi emulator")
      const chat = emulator.requests("/coding/v1/chat/completions").find((c) => c.msh.platform !== undefined)!
      return chat.json as Record<string, unknown>
    }
    const high = await bodyOf(`${CN}/kimi-for-coding#high`)
    expect(high["thinking"]).toEqual({ type: "enabled", effort: "high" })
    expect(high).not.toHaveProperty("reasoning_effort")
    const off = await bodyOf(`${CN}/kimi-for-coding#off`)
    expect(off["thinking"]).toEqual({ type: "disabled" })
    expect(off).not.toHaveProperty("reasoning_effort")
    const plain = await bodyOf(`${CN}/kimi-for-coding`)
    expect(plain["thinking"]).toEqual({ type: "enabled" })
    await server.stop()
  }, RUN_TIMEOUT)

  it("the account's models beyond the catalog: after a login through the host, the account-only model answers", async () => {
    const { e } = await world()
    const { server } = await login(e, CN)
    emulator.clearRequests()
    let r = await e.run(`${CN}/${ACCOUNT_ONLY_MODEL_ID}`, "Say hello", { server })
    // the list is read in the background after the login: give it one more try
    if (!r.stdout.includes("Hello from the Kimi emulator")) r = await e.run(`${CN}/${ACCOUNT_ONLY_MODEL_ID}`, "Say hello", { server })
    expect(r.stdout, `${r.stdout}\n${r.stderr}`).toContain("Hello from the Kimi emulator")
    const chat = emulator.requests("/coding/v1/chat/completions").find((c) => c.msh.platform !== undefined && c.status === 200)!
    expect((chat.json as Record<string, unknown>)["model"]).toBe(ACCOUNT_ONLY_MODEL_ID)
    await server.stop()
  }, RUN_TIMEOUT)

  it("a used-up quota: the message names the window and its reset, and the host does not retry", async () => {
    const { e } = await world()
    const { server } = await login(e, CN)
    emulator.exhaustQuota()
    emulator.clearRequests()
    try {
      const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { server, timeoutMs: 60_000 })
      const out = `${r.stdout}\n${r.stderr}`
      expect(r.timedOut).toBe(false)
      expect(out).toContain("usage limit is used up")
      expect(out).toMatch(/resets/)
      expect(out).toContain("not a login problem")
      // one refused session call, never retried (the title request may add one of its own)
      const hooked = emulator.requests("/coding/v1/chat/completions").filter((c) => c.msh.platform !== undefined)
      expect(hooked).toHaveLength(1)
      expect(emulator.stats().refreshes).toBe(0)
    } finally {
      emulator.resetQuota()
      await server.stop()
    }
  }, RUN_TIMEOUT)

  it("a 401 on a token believed valid: one refresh under the package's lock, one resend, the answer", async () => {
    const { e, tokenFile } = await world()
    const { server } = await login(e, CN)
    const before = readTokens(tokenFile)
    const refreshes = emulator.stats().refreshes
    emulator.expireAccessTokens()
    emulator.clearRequests()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { server })
    expect(r.stdout, `${r.stdout}\n${r.stderr}`).toContain("Hello from the Kimi emulator")
    expect(emulator.stats().refreshes - refreshes).toBe(1)
    expect(emulator.stats().spentTokenReplays).toBe(0)
    const hooked = emulator.requests("/coding/v1/chat/completions").filter((c) => c.msh.platform !== undefined)
    const rejected = hooked.filter((c) => c.status === 401)
    const answered = hooked.filter((c) => c.status === 200)
    expect(rejected.map((c) => c.bearer)).toEqual([before.access_token])
    expect(answered).toHaveLength(1)
    expect(answered[0]!.bearer).not.toBe(before.access_token)
    // The refresh happened inside OpenCode 2's Bun: the saved file must be the new login
    // (before issue 15's fix, Bun wrote every refreshed oauth.json as spaces).
    const text = fs.readFileSync(tokenFile, "utf8")
    expect(text.trim(), "oauth.json after a refresh under Bun is not JSON (issue 15)").not.toBe("")
    const after = JSON.parse(text)
    expect(after.access_token).toBe(answered[0]!.bearer)
    expect(after.refresh_token).not.toBe(before.refresh_token)
    // the row still has no refresh token
    for (const row of await e.credentials()) expect(row.value.refresh).toBe(MARKER)
    await server.stop()
  }, RUN_TIMEOUT)

  it("a dead login: a message naming OpenCode 2's `/connect` login first (not 1.18's `opencode auth login`), no crash, the stored login kept", async () => {
    const { e, tokenFile } = await world()
    const { server } = await login(e, CN)
    const kept = fs.readFileSync(tokenFile, "utf8")
    emulator.revokeAll()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { server, timeoutMs: 60_000 })
    const out = `${r.stdout}\n${r.stderr}`
    expect(r.timedOut).toBe(false)
    expect(out).toMatch(/in OpenCode, use `\/connect`, pick Kimi For Coding \(kimi\.com\) \(kimi-code-plan-cn\), then \\?"Kimi device login/)
    // 1.18's `auth login -p` is never named; OpenCode 2's own `auth login <provider> --method kimi-device` is (issue 23).
    expect(out).not.toContain("opencode auth login -p")
    expect(out).not.toContain("Hello from the Kimi emulator")
    expect(fs.readFileSync(tokenFile, "utf8")).toBe(kept)
    // the server is still up
    expect((await server.api("GET", "/api/integration")).status).toBe(200)
    await server.stop()
  }, RUN_TIMEOUT)

  it("a login at the other region: kimi-code-plan-cn says which region the login is for, and sends no token", async () => {
    const { e, tokenFile } = await world()
    const first = await login(e, CN)
    await first.server.stop()
    // then `kimi-auth login --region global` replaced the package's login
    const issued = emulator.issueTokens()
    const now = Math.floor(Date.now() / 1000)
    fs.writeFileSync(tokenFile, JSON.stringify({
      access_token: issued.accessToken,
      refresh_token: issued.refreshToken,
      token_type: "Bearer",
      expires_in: 900,
      scope: "kimi-code",
      expires_at: now + 900,
      region: "global"
    }), { mode: 0o600 })
    const server = await e.serve()
    emulator.clearRequests()
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello", { server, timeoutMs: 60_000 })
    const out = `${r.stdout}\n${r.stderr}`
    expect(out).toContain("Kimi login is for the other region")
    expect(out).toContain("kimi-code-plan-global")
    for (const c of emulator.requests("/coding/v1/chat/completions").filter((x) => x.msh.platform !== undefined)) {
      expect(c.bearer).not.toBe(issued.accessToken)
    }
    await server.stop()
  }, RUN_TIMEOUT)

  it("an expired login hit at once from OpenCode 2 (run), OpenCode 1.18.33 (run) and the CLI (kimi-auth token): 1 refresh, 0 reuse", async () => {
    await ensureOpencode()
    const { e, tokenFile } = await world()
    const { server } = await login(e, CN)
    await server.stop()
    // The same user's OpenCode 1.18.33 and CLI: the same package token file (OPENCODE_KIMI_AUTH_DIR).
    const storage = path.dirname(tokenFile)
    const v1 = await makeOpencodeEnv({
      plugin: repoRoot,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage }
    })
    envs.push(v1)
    const stored = readTokens(tokenFile)
    fs.writeFileSync(tokenFile, JSON.stringify({ ...stored, expires_at: Math.floor(Date.now() / 1000) - 60 }), { mode: 0o600 })
    emulator.expireAccessTokens()
    emulator.clearRequests()
    const { refreshes, familiesRevoked, spentTokenReplays } = emulator.stats()
    const cliEnv = isolatedEnv(e.home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl, OPENCODE_KIMI_AUTH_DIR: storage })
    const [v2run, v1run, cli] = await Promise.all([
      e.run(`${CN}/kimi-for-coding`, "Say hello"),
      v1.prompt(`${CN}/kimi-for-coding`, "Say hello", { timeoutMs: 120_000 }),
      runCli(["token"], cliEnv, { timeoutMs: 60_000 })
    ])
    expect(v2run.stdout, `${v2run.stdout}\n${v2run.stderr}\n${e.logs().slice(-3000)}`).toContain("Hello from the Kimi emulator")
    expect(v1run.stdout, v1run.stderr).toContain("Hello from the Kimi emulator")
    expect(cli.code, cli.stderr).toBe(0)
    const after = readTokens(tokenFile)
    expect(cli.stdout.trim()).toBe(after.access_token)
    expect(emulator.stats().refreshes - refreshes).toBe(1)
    expect(emulator.requests("/api/oauth/token").filter((x) => x.form?.["grant_type"] === "refresh_token")).toHaveLength(1)
    expect(emulator.requests("/api/oauth/token").filter((x) => x.error !== undefined)).toEqual([])
    expect(emulator.stats().spentTokenReplays - spentTokenReplays).toBe(0)
    expect(emulator.stats().familiesRevoked - familiesRevoked).toBe(0)
    for (const row of await e.credentials()) expect(row.value.refresh).toBe(MARKER)
  }, RUN_TIMEOUT * 2)
})
