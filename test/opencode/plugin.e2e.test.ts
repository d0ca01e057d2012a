/**
 * The real plugin inside the real OpenCode 1.18.33 binary, with the model
 * catalog bundled in the binary (what every user has: `kimi-code-plan-cn` and
 * `kimi-code-plan-global`), against the Kimi emulator on loopback (both
 * regions' hosts pointed at it with KIMI_OAUTH_HOST / KIMI_CODE_BASE_URL).
 * The plugin is listed as the package folder, so OpenCode resolves it the way
 * it resolves the npm package: through `exports["./server"]` of package.json,
 * the bundle of src/opencode/server.ts (test/opencode/NOTES.md). The config
 * has no provider block. Skipped with SKIP_OPENCODE=1.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { ACCOUNT_ONLY_MODEL_ID } from "../../src/emulator/Models.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, skipOpencode, type OpencodeEnv } from "../support/opencode.js"
import { repoRoot } from "../support/cli.js"
import { seedLogin as writeSeedLogin } from "../support/tokens.js"

const pluginEntry = repoRoot
const bundle = path.join(repoRoot, "dist", "bundle", "server.js")
const CN = "kimi-code-plan-cn"
const GLOBAL = "kimi-code-plan-global"
const MODEL = `${CN}/kimi-for-coding`
const RUN_TIMEOUT = 120_000

describe.skipIf(skipOpencode)("opencode-kimi-auth inside OpenCode 1.18.33", () => {
  let emulator: StartedEmulator
  const envs: Array<OpencodeEnv> = []

  beforeAll(async () => {
    expect(fs.existsSync(bundle), "run `npm run build` first: the bundle is what OpenCode loads").toBe(true)
    await ensureOpencode()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 1500 })
  }, INSTALL_TIMEOUT_MS)

  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })

  afterAll(async () => {
    await emulator?.close()
  })

  const kimiEnv = async () => {
    const e = await makeOpencodeEnv({
      plugin: pluginEntry,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    envs.push(e)
    const storage = path.join(e.home, ".opencode-kimi-auth")
    return { e, storage, tokenFile: path.join(storage, "oauth.json") }
  }

  /** Puts a login in both stores, as a finished `opencode auth login` would, with the given expiry. */
  const seedLogin = async (e: OpencodeEnv, tokenFile: string, expiresAt: number, provider = CN) => {
    const issued = emulator.issueTokens()
    writeSeedLogin(tokenFile, { access: issued.accessToken, refresh: issued.refreshToken, expiresAt })
    await e.writeAuth({ [provider]: { type: "oauth", refresh: issued.refreshToken, access: issued.accessToken, expires: expiresAt * 1000 } })
    return issued
  }

  const now = () => Math.floor(Date.now() / 1000)
  const output = async (e: OpencodeEnv, r: { stdout: string; stderr: string }) => `${r.stdout}\n${r.stderr}\n${await e.readLogs()}`

  it.each([
    { provider: CN, region: "mainland-cn" },
    { provider: GLOBAL, region: "global" }
  ])(
    "opencode auth login -p $provider -m 'Kimi device login' runs the device flow and stores the login (region $region) in both stores; opencode run then answers",
    async ({ provider, region }) => {
      const { e, tokenFile } = await kimiEnv()
      const before = emulator.deviceCodes().length
      const r = await e.login(provider, "Kimi device login")
      expect(r.timedOut).toBe(false)
      expect(r.code, await output(e, r)).toBe(0)
      const code = emulator.deviceCodes()[before]!
      expect(r.stdout).toContain(code.userCode)
      expect(r.stdout).toContain(`${emulator.url}/device`)
      const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8"))
      expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600)
      expect(stored.region).toBe(region)
      const auth = (await e.readAuth()) as Record<string, { type: string; access: string; refresh: string; expires: number }>
      expect(auth[provider]).toMatchObject({ type: "oauth", access: stored.access_token, refresh: stored.refresh_token })
      expect(auth[provider]!.expires).toBe(stored.expires_at * 1000)
      // every OAuth call carried the identity headers with the stored device id
      for (const req of emulator.requests("/api/oauth/token").filter((x) => x.form?.["device_code"] === code.deviceCode)) {
        expect(req.msh.deviceId).toBe(stored.device_id)
        expect(req.msh.platform).toBeTruthy()
      }

      emulator.clearRequests()
      const answer = await e.prompt(`${provider}/kimi-for-coding`, "Say hello")
      expect(answer.code, await output(e, answer)).toBe(0)
      expect(answer.stdout).toContain("Hello from the Kimi emulator")
      const chats = emulator.requests("/coding/v1/chat/completions")
      expect(chats.length).toBeGreaterThanOrEqual(1)
      for (const c of chats) expect(c.bearer).toBe(stored.access_token)
    },
    RUN_TIMEOUT
  )

  it(
    "opencode run answers through the plugin's fetch, with the bearer token and the X-Msh headers",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() + 800)
      emulator.clearRequests()
      const r = await e.prompt(MODEL, "Say hello")
      expect(r.code, await output(e, r)).toBe(0)
      expect(r.stdout).toContain("Hello from the Kimi emulator")
      const chats = emulator.requests("/coding/v1/chat/completions")
      expect(chats.length).toBeGreaterThanOrEqual(1)
      for (const c of chats) {
        expect(c.bearer).toBe(issued.accessToken)
        expect(c.status).toBe(200)
        expect(c.msh.platform).toBe("kimi_cli")
        expect(c.msh.deviceId).toMatch(/^[0-9a-f-]{36}$/)
        expect(c.msh.deviceModel).toBeTruthy()
        expect(c.userAgent).toMatch(/^KimiCLI\//)
      }
    },
    RUN_TIMEOUT
  )

  it(
    "the catalog's models stay and the account's others are added: opencode models lists them, and one answers",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      await seedLogin(e, tokenFile, now() + 800)
      const models = await e.run(["models", CN, "--verbose"])
      expect(models.code, await output(e, models)).toBe(0)
      for (const id of ["kimi-for-coding", "kimi-for-coding-highspeed", "k3", "k3-256k", ACCOUNT_ONLY_MODEL_ID]) {
        expect(models.stdout).toContain(`${CN}/${id}\n`)
      }
      // the catalog's own entry keeps its 1M context and its variants, plus the plugin's off variant
      const entry = /kimi-code-plan-cn\/kimi-for-coding\n(\{[\s\S]*?\n\})/.exec(models.stdout)
      const info = JSON.parse(entry![1]!) as { limit: { context: number }; variants: Record<string, unknown> }
      expect(info.limit.context).toBe(1_048_576)
      expect(Object.keys(info.variants).sort()).toEqual(["high", "low", "max", "off"])
      emulator.clearRequests()
      const r = await e.prompt(`${CN}/${ACCOUNT_ONLY_MODEL_ID}`, "account model")
      expect(r.code, await output(e, r)).toBe(0)
      expect(r.stdout).toContain("Hello from the Kimi emulator")
      expect(emulator.requests("/coding/v1/chat/completions").some((x) => (x.json as { model?: string }).model === ACCOUNT_ONLY_MODEL_ID)).toBe(true)
    },
    RUN_TIMEOUT
  )

  it(
    "each thinking variant reaches Kimi as thinking { type, effort }: the bodies the emulator received",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      await seedLogin(e, tokenFile, now() + 800)
      const isTitle = (json: unknown) => JSON.stringify((json as { messages?: unknown }).messages ?? []).includes("title generator")
      const seen: Record<string, unknown> = {}
      // OpenCode 1.18.33 sends reasoning_effort for the catalog's effort variants and nothing by default;
      // `off` is the plugin's variant on the models whose catalog entry has a thinking toggle.
      for (const variant of ["default", "low", "high", "max", "off"]) {
        emulator.clearRequests()
        const args = ["run", "-m", MODEL, ...(variant === "default" ? [] : ["--variant", variant]), `thinking ${variant}`]
        const r = await e.run(args, { timeoutMs: RUN_TIMEOUT })
        expect(r.code, await output(e, r)).toBe(0)
        const bodies = emulator.requests("/coding/v1/chat/completions").map((x) => x.json as Record<string, unknown>)
        const main = bodies.find((b) => !isTitle(b))!
        const title = bodies.find(isTitle)
        seen[variant] = main["thinking"]
        for (const b of bodies) expect(b, variant).not.toHaveProperty("reasoning_effort")
        if (title) expect(title["thinking"]).toEqual({ type: "enabled", effort: "low" }) // OpenCode's title call asks for low effort
      }
      expect(seen).toEqual({
        default: { type: "enabled" },
        low: { type: "enabled", effort: "low" },
        high: { type: "enabled", effort: "high" },
        max: { type: "enabled", effort: "max" },
        off: { type: "disabled" }
      })
    },
    RUN_TIMEOUT * 3
  )

  it(
    "streamed reasoning_content reaches OpenCode as reasoning, apart from the answer",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      await seedLogin(e, tokenFile, now() + 800)
      const r = await e.run(["run", "-m", MODEL, "--variant", "high", "--thinking", "--format", "json", "think aloud"], { timeoutMs: RUN_TIMEOUT })
      expect(r.code, await output(e, r)).toBe(0)
      const events = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { type: string; part?: { type?: string; text?: string } })
      const reasoning = events.filter((x) => x.part?.type === "reasoning").map((x) => x.part?.text ?? "").join("")
      const text = events.filter((x) => x.type === "text").map((x) => x.part?.text ?? "").join("")
      expect(reasoning, r.stdout).toContain("Thinking (effort high)")
      expect(text).toContain("Hello from the Kimi emulator")
      expect(text).not.toContain("Thinking")
    },
    RUN_TIMEOUT
  )

  it(
    "a login from the other region: opencode run on kimi-code-plan-global says so and names its login, and sends no token",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() + 800)
      const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8"))
      fs.writeFileSync(tokenFile, JSON.stringify({ ...stored, region: "mainland-cn" }), { mode: 0o600 })
      await e.writeAuth({})
      emulator.clearRequests()
      const r = await e.prompt(`${GLOBAL}/kimi-for-coding`, "wrong region")
      expect(r.timedOut).toBe(false)
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/other region/)
      expect(r.stderr).toContain(`opencode auth login -p ${GLOBAL}`)
      expect(r.stdout + r.stderr).not.toContain(issued.accessToken)
      expect(emulator.requests("/coding/v1/chat/completions").filter((x) => x.bearer === issued.accessToken)).toHaveLength(0)
    },
    RUN_TIMEOUT
  )

  it(
    "expired access token, two concurrent opencode run processes: both succeed and exactly one refresh reaches the server",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      // OpenCode creates its database on the first start; two first starts at once race on that
      // (a "CREATE TABLE" failure inside OpenCode). Start it once before there is a login to refresh.
      const warm = await e.run(["models"])
      expect(warm.code, await output(e, warm)).toBe(0)
      await seedLogin(e, tokenFile, now() - 60)
      const stats = emulator.stats()
      const [a, b] = await Promise.all([e.prompt(MODEL, "one"), e.prompt(MODEL, "two")])
      expect(a.code, await output(e, a)).toBe(0)
      expect(b.code, await output(e, b)).toBe(0)
      expect(a.stdout).toContain("Hello from the Kimi emulator")
      expect(b.stdout).toContain("Hello from the Kimi emulator")
      const after = emulator.stats()
      expect(after.refreshes - stats.refreshes).toBe(1)
      expect(after.spentTokenReplays - stats.spentTokenReplays).toBe(0)
      expect(after.familiesRevoked - stats.familiesRevoked).toBe(0)
      // OpenCode's store got the rotated tokens too
      const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8"))
      const auth = (await e.readAuth()) as Record<string, { refresh: string }>
      expect(auth[CN]!.refresh).toBe(stored.refresh_token)
    },
    RUN_TIMEOUT
  )

  it.each([
    { slow: 0, label: "" },
    { slow: 2500, label: ", also when the refresh outlasts the model list's 1.5 s budget" }
  ])(
    "a 401 from the API on a token we believed valid is healed by one refresh and one retry$label",
    async ({ slow }) => {
      const { e, tokenFile } = await kimiEnv()
      await seedLogin(e, tokenFile, now() + 800)
      // A slow token endpoint stands in for a loaded machine: the chat calls start while the refresh is in flight.
      if (slow > 0) emulator.setFaults({ latencyMillis: slow, paths: ["/api/oauth/token"] })
      onTestFinished(() => emulator.setFaults({}))
      emulator.expireAccessTokens()
      const stats = emulator.stats()
      emulator.clearRequests()
      const r = await e.prompt(MODEL, "hello after expiry")
      expect(r.code, await output(e, r)).toBe(0)
      expect(r.stdout).toContain("Hello from the Kimi emulator")
      expect(emulator.stats().refreshes - stats.refreshes).toBe(1)
      // Several API calls of one run can be in flight with the revoked token at once: the model list of
      // each provider instance (provider.models hook, 1.5 s budget; a login without a recorded region
      // serves both) and OpenCode's title and answer calls, which it sends together. Each chat call meets
      // the 401 and is retried once with the refreshed token; one refresh in all. A model-list retry may
      // still be waiting when the run ends (OpenCode exits after the answer).
      // (The flake in issue 9: this test counted exactly one 401 and once saw three, with one refresh.
      // Any of these overlaps explains it; none is a fault: a count of 401s depends on timing, so the
      // test checks what must hold instead, and the second case forces the overlap every time.)
      const api = emulator.requests().filter((x) => x.path.startsWith("/coding/v1/"))
      const rejected = api.filter((x) => x.status === 401)
      expect(rejected.length).toBeGreaterThanOrEqual(1)
      expect(rejected.length).toBeLessThanOrEqual(4)
      const revoked = rejected[0]!.bearer
      for (const x of rejected) expect(x.bearer).toBe(revoked)
      const renewed = api.filter((x) => x.bearer !== revoked)
      for (const x of renewed) expect(x.status, x.path).toBe(200)
      const chats = "/coding/v1/chat/completions"
      expect(renewed.filter((x) => x.path === chats).length).toBeGreaterThanOrEqual(rejected.filter((x) => x.path === chats).length)
      expect(emulator.requests("/coding/v1/chat/completions").map((x) => x.status).at(-1)).toBe(200)
    },
    RUN_TIMEOUT
  )

  it.each([403, 429] as const)(
    "a used-up plan (Kimi's %i refusal): opencode run says the quota is used up and when it resets, with no refresh and no retry",
    async (refusal) => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() + 800)
      emulator.setQuota({ refusal })
      emulator.exhaustQuota("fiveHour")
      onTestFinished(() => {
        emulator.resetQuota()
        emulator.setQuota({ refusal: 403 })
      })
      const stats = emulator.stats()
      emulator.clearRequests()
      const r = await e.prompt(MODEL, "over quota")
      expect(r.timedOut).toBe(false)
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/usage limit is used up \(.*\); it resets at .* \(in .*\)/)
      expect(r.stderr).not.toMatch(/login required/i)
      expect(r.durationMs).toBeLessThan(60_000) // OpenCode does not retry it (a 429 or "rate limit" text it would, for minutes)
      expect(emulator.stats().refreshes - stats.refreshes).toBe(0)
      const chats = emulator.requests("/coding/v1/chat/completions")
      expect(chats.length).toBeGreaterThanOrEqual(1)
      expect(chats.length).toBeLessThanOrEqual(2) // the title and the answer, each refused once
      for (const c of chats) expect(c.bearer).toBe(issued.accessToken)
      expect(emulator.requests("/coding/v1/usages").length).toBeGreaterThanOrEqual(1)
    },
    RUN_TIMEOUT
  )

  it(
    "a login made with `kimi-auth login` alone (no auth.json entry) is enough for opencode run",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() + 800)
      await e.writeAuth({})
      emulator.clearRequests()
      const r = await e.prompt(MODEL, "no auth.json entry")
      expect(r.code, await output(e, r)).toBe(0)
      expect(r.stdout).toContain("Hello from the Kimi emulator")
      for (const c of emulator.requests("/coding/v1/chat/completions")) expect(c.bearer).toBe(issued.accessToken)
    },
    RUN_TIMEOUT
  )

  it(
    "an API-key login is passed through with the identity headers, not replaced by OAuth",
    async () => {
      const { e } = await kimiEnv()
      const key = emulator.issueTokens().accessToken // any bearer the emulator accepts stands in for an API key
      await e.writeAuth({ [CN]: { type: "api", key } })
      emulator.clearRequests()
      const r = await e.prompt(MODEL, "with a key")
      expect(r.code, await output(e, r)).toBe(0)
      const chats = emulator.requests("/coding/v1/chat/completions")
      expect(chats.length).toBeGreaterThanOrEqual(1)
      for (const c of chats) {
        expect(c.bearer).toBe(key)
        expect(c.msh.platform).toBe("kimi_cli")
      }
    },
    RUN_TIMEOUT
  )

  it(
    "a refused login makes `opencode auth login` fail with the reason, and stores nothing",
    async () => {
      const refusing = await start({ interval: 1 })
      try {
        const e = await makeOpencodeEnv({
          plugin: pluginEntry,
          catalog: "bundled",
          env: { KIMI_OAUTH_HOST: refusing.oauthHost, KIMI_CODE_BASE_URL: refusing.apiBaseUrl }
        })
        envs.push(e)
        const denier = setInterval(() => {
          for (const c of refusing.deviceCodes()) if (c.status === "pending") refusing.deny(c.userCode)
        }, 200)
        const r = await e.login(CN, "Kimi device login").finally(() => clearInterval(denier))
        expect(r.code).not.toBe(0)
        expect(r.stdout + r.stderr).toMatch(/refused/)
        expect(r.stderr).not.toMatch(/^\s+at /m)
        expect((await e.readAuth())?.[CN]).toBeUndefined()
        expect(fs.existsSync(path.join(e.home, ".opencode-kimi-auth", "oauth.json"))).toBe(false)
      } finally {
        await refusing.close()
      }
    },
    RUN_TIMEOUT
  )

  it(
    "a dead refresh token: a message naming `opencode auth login -p kimi-code-plan-cn` first, no crash, and the stored login is kept",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() - 60)
      emulator.revokeAll()
      const r = await e.prompt(MODEL, "hello")
      expect(r.timedOut).toBe(false)
      expect(r.code).not.toBe(0)
      const said = r.stdout + r.stderr
      expect(said).toContain(`opencode auth login -p ${CN}`)
      // OpenCode's own command first: a user who only added the plugin has no kimi-auth
      const cli = said.indexOf("kimi-auth login")
      expect(cli === -1 || cli > said.indexOf(`opencode auth login -p ${CN}`)).toBe(true)
      expect(r.stderr).not.toMatch(/^\s+at /m)
      expect(r.stderr).not.toMatch(/panic|segmentation fault|Bun v\d/i)
      expect(r.stdout + r.stderr).not.toContain(issued.refreshToken)
      expect(JSON.parse(fs.readFileSync(tokenFile, "utf8")).refresh_token).toBe(issued.refreshToken)
    },
    RUN_TIMEOUT
  )
})
