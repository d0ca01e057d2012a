/**
 * The real plugin inside the real OpenCode 1.18.33 binary, against the bundled
 * Kimi emulator on loopback. The plugin is listed as the package folder, so
 * OpenCode resolves it the way it resolves the npm package: through
 * `exports["./server"]` of package.json, the minified bundle
 * (test/opencode/NOTES.md). The config has no provider block: the plugin's
 * config hook defines it. Skipped with SKIP_OPENCODE=1.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, skipOpencode, type OpencodeEnv } from "../support/opencode.js"
import { repoRoot } from "../support/cli.js"

const pluginEntry = repoRoot
const bundle = path.join(repoRoot, "dist", "bundle", "server.js")
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
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    envs.push(e)
    const storage = path.join(e.home, ".opencode-kimi-auth")
    return { e, storage, tokenFile: path.join(storage, "oauth.json") }
  }

  /** Puts a login in both stores, as a finished `opencode auth login` would, with the given expiry. */
  const seedLogin = async (e: OpencodeEnv, tokenFile: string, expiresAt: number) => {
    const issued = emulator.issueTokens()
    fs.mkdirSync(path.dirname(tokenFile), { recursive: true, mode: 0o700 })
    fs.writeFileSync(
      tokenFile,
      JSON.stringify({
        access_token: issued.accessToken,
        refresh_token: issued.refreshToken,
        token_type: "Bearer",
        expires_in: 900,
        scope: "kimi-code",
        expires_at: expiresAt
      }),
      { mode: 0o600 }
    )
    await e.writeAuth({ kimi: { type: "oauth", refresh: issued.refreshToken, access: issued.accessToken, expires: expiresAt * 1000 } })
    return issued
  }

  const now = () => Math.floor(Date.now() / 1000)
  const output = async (e: OpencodeEnv, r: { stdout: string; stderr: string }) => `${r.stdout}\n${r.stderr}\n${await e.readLogs()}`

  it(
    "opencode auth login runs the device flow, shows the user code, and stores the login in both stores",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const before = emulator.deviceCodes().length
      const r = await e.login("kimi", "Kimi device login")
      expect(r.timedOut).toBe(false)
      expect(r.code, await output(e, r)).toBe(0)
      const code = emulator.deviceCodes()[before]!
      expect(r.stdout).toContain(code.userCode)
      expect(r.stdout).toContain(`${emulator.url}/device`)
      const stored = JSON.parse(fs.readFileSync(tokenFile, "utf8"))
      expect(fs.statSync(tokenFile).mode & 0o777).toBe(0o600)
      const auth = (await e.readAuth()) as Record<string, { type: string; access: string; refresh: string; expires: number }>
      expect(auth["kimi"]).toMatchObject({ type: "oauth", access: stored.access_token, refresh: stored.refresh_token })
      expect(auth["kimi"]!.expires).toBe(stored.expires_at * 1000)
      // every OAuth call carried the identity headers with the stored device id
      for (const req of emulator.requests("/api/oauth/token").filter((x) => x.form?.["device_code"] === code.deviceCode)) {
        expect(req.msh.deviceId).toBe(stored.device_id)
        expect(req.msh.platform).toBeTruthy()
      }
    },
    RUN_TIMEOUT
  )

  it(
    "opencode run answers through the plugin's fetch, with the bearer token and the X-Msh headers",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() + 800)
      emulator.clearRequests()
      const r = await e.prompt("kimi/kimi-for-coding", "Say hello")
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
    "expired access token, two concurrent opencode run processes: both succeed and exactly one refresh reaches the server",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      // OpenCode creates its database on the first start; two first starts at once race on that
      // (a "CREATE TABLE" failure inside OpenCode). Start it once before there is a login to refresh.
      const warm = await e.run(["models"])
      expect(warm.code, await output(e, warm)).toBe(0)
      await seedLogin(e, tokenFile, now() - 60)
      const stats = emulator.stats()
      const [a, b] = await Promise.all([e.prompt("kimi/kimi-for-coding", "one"), e.prompt("kimi/kimi-for-coding", "two")])
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
      expect(auth["kimi"]!.refresh).toBe(stored.refresh_token)
    },
    RUN_TIMEOUT
  )

  it(
    "a 401 from the API on a token we believed valid is healed by one refresh and one retry",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      await seedLogin(e, tokenFile, now() + 800)
      emulator.expireAccessTokens()
      const stats = emulator.stats()
      emulator.clearRequests()
      const r = await e.prompt("kimi/kimi-for-coding", "hello after expiry")
      expect(r.code, await output(e, r)).toBe(0)
      expect(r.stdout).toContain("Hello from the Kimi emulator")
      expect(emulator.stats().refreshes - stats.refreshes).toBe(1)
      // The first API call of the run meets the 401 (the config hook's model list, or the chat),
      // and is retried once on the same path with the refreshed token.
      const api = emulator.requests().filter((x) => x.path.startsWith("/coding/v1/"))
      const rejected = api.findIndex((x) => x.status === 401)
      expect(rejected).toBeGreaterThanOrEqual(0)
      expect(api.filter((x) => x.status === 401)).toHaveLength(1)
      expect(api[rejected + 1]).toMatchObject({ path: api[rejected]!.path, status: 200 })
      expect(api[rejected + 1]!.bearer).not.toBe(api[rejected]!.bearer)
      expect(emulator.requests("/coding/v1/chat/completions").map((x) => x.status).at(-1)).toBe(200)
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
      const r = await e.prompt("kimi/kimi-for-coding", "no auth.json entry")
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
      await e.writeAuth({ kimi: { type: "api", key } })
      emulator.clearRequests()
      const r = await e.prompt("kimi/kimi-for-coding", "with a key")
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
          env: { KIMI_OAUTH_HOST: refusing.oauthHost, KIMI_CODE_BASE_URL: refusing.apiBaseUrl }
        })
        envs.push(e)
        const denier = setInterval(() => {
          for (const c of refusing.deviceCodes()) if (c.status === "pending") refusing.deny(c.userCode)
        }, 200)
        const r = await e.login("kimi", "Kimi device login").finally(() => clearInterval(denier))
        expect(r.code).not.toBe(0)
        expect(r.stdout + r.stderr).toMatch(/refused/)
        expect(r.stderr).not.toMatch(/^\s+at /m)
        expect((await e.readAuth())?.["kimi"]).toBeUndefined()
        expect(fs.existsSync(path.join(e.home, ".opencode-kimi-auth", "oauth.json"))).toBe(false)
      } finally {
        await refusing.close()
      }
    },
    RUN_TIMEOUT
  )

  it(
    "a dead refresh token: a message naming `opencode auth login -p kimi`, no crash, and the stored login is kept",
    async () => {
      const { e, tokenFile } = await kimiEnv()
      const issued = await seedLogin(e, tokenFile, now() - 60)
      emulator.revokeAll()
      const r = await e.prompt("kimi/kimi-for-coding", "hello")
      expect(r.timedOut).toBe(false)
      expect(r.code).not.toBe(0)
      expect(r.stdout + r.stderr).toContain("opencode auth login -p kimi")
      expect(r.stderr).not.toMatch(/^\s+at /m)
      expect(r.stderr).not.toMatch(/panic|segmentation fault|Bun v\d/i)
      expect(r.stdout + r.stderr).not.toContain(issued.refreshToken)
      expect(JSON.parse(fs.readFileSync(tokenFile, "utf8")).refresh_token).toBe(issued.refreshToken)
    },
    RUN_TIMEOUT
  )
})
