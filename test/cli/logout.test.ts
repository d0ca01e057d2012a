/**
 * Logout means logout, through the real edges: `kimi-auth logout` as a child
 * process removes the token file and OpenCode's copy of the login (only the
 * Kimi OAuth entries of `auth.json`, every other entry unchanged), and says
 * so; the plugin (its module API, as OpenCode calls it) never adopts a copy
 * of that login back, even one OpenCode still hands its loader; the facade's
 * `logout()` is as final; a new login made through OpenCode is adopted.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { start, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import { KimiOAuthClient } from "../../src/index.js"
import { isLoggedOut, logoutMarkerPath, recordLoggedOut } from "../../src/storage/Notes.js"
import { regionPlugin } from "../../src/opencode/KimiPlugin.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"

let emulator: StartedEmulator
let home: string
const disposers: Array<() => Promise<void>> = []

beforeAll(async () => {
  emulator = await start({ interval: 1 })
})
afterAll(async () => {
  await emulator.close()
})
beforeEach(() => {
  home = makeTemp("kimi-logout-")
})
afterEach(async () => {
  while (disposers.length) await disposers.pop()!()
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const tokenFile = () => path.join(storage(), "oauth.json")
const authFile = () => path.join(home, ".local", "share", "opencode", "auth.json")
const env = () => isolatedEnv(home, { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl })

/** A live login from the emulator, in our file and as OpenCode's mirror holds it. */
const seedLogin = () => {
  const issued = emulator.issueTokens()
  const expiresAt = Math.floor(Date.now() / 1000) + 800
  fs.mkdirSync(storage(), { recursive: true, mode: 0o700 })
  fs.writeFileSync(
    tokenFile(),
    JSON.stringify({ access_token: issued.accessToken, refresh_token: issued.refreshToken, expires_in: 900, expires_at: expiresAt }),
    { mode: 0o600 }
  )
  const entry = { type: "oauth" as const, refresh: issued.refreshToken, access: issued.accessToken, expires: expiresAt * 1000 }
  return { issued, entry }
}

/** OpenCode's auth.json with the Kimi copy and other providers' entries, as OpenCode writes it (2-space JSON, 0600). */
const writeAuth = (entries: Record<string, unknown>) => {
  fs.mkdirSync(path.dirname(authFile()), { recursive: true })
  fs.writeFileSync(authFile(), JSON.stringify(entries, null, 2), { mode: 0o600 })
}

const OTHERS = {
  anthropic: { type: "api", key: "sk-ant-not-a-real-key" },
  openai: { type: "oauth", refresh: "openai-refresh", access: "openai-access", expires: 1_900_000_000_000, accountId: "acc-1" },
  "kimi-code-plan-global": { type: "api", key: "sk-kimi-api-key" }
}

/** The plugin as OpenCode runs it, its loader handed `auth` as OpenCode's getAuth() would. */
const pluginFetch = async (auth: unknown) => {
  const hooks = await regionPlugin("mainland-cn")({}, {
    storageDir: storage(),
    oauthHost: emulator.oauthHost,
    apiBaseUrl: emulator.apiBaseUrl
  })
  disposers.push(hooks.dispose)
  const options = await hooks.auth.loader(async () => auth as never)
  return (extra: Record<string, unknown> = {}) =>
    options.fetch(`${emulator.apiBaseUrl}/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer kimi-oauth", "content-type": "application/json" },
      body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }], ...extra })
    })
}

describe("kimi-auth logout", () => {
  it("removes the file and OpenCode's copy, says what was removed and what stays; nothing uses the login again", async () => {
    const { entry } = seedLogin()
    writeAuth({ ...OTHERS, "kimi-code-plan-cn": entry })
    const r = await runCli(["logout"], env())
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain(`Logged out: removed ${tokenFile()}`)
    expect(r.stdout).toContain(`Removed OpenCode's copy of the login (kimi-code-plan-cn) from ${authFile()}`)
    expect(r.stdout).toContain("OpenCode still holds a Kimi API key for kimi-code-plan-global")
    expect(r.stdout).not.toContain(entry.refresh)
    expect(r.stdout + r.stderr).not.toContain(entry.access)
    expect(fs.existsSync(tokenFile())).toBe(false)

    // auth.json: exactly the other entries, unchanged, still 0600.
    expect(JSON.parse(fs.readFileSync(authFile(), "utf8"))).toEqual(OTHERS)
    expect(fs.statSync(authFile()).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(path.dirname(authFile()))).toEqual(["auth.json"])
    // The marker holds fingerprints, never a token.
    const marker = fs.readFileSync(logoutMarkerPath(storage()), "utf8")
    expect(marker).not.toContain(entry.refresh)
    expect(marker).not.toContain(entry.access)

    // The plugin, handed the old copy by an OpenCode that still had it: not adopted, the request is refused.
    const chat = await pluginFetch(entry)
    const res = await chat()
    expect(res.status).toBe(401)
    expect((await res.json()).error.message).toMatch(/login required/i)
    expect(fs.existsSync(tokenFile())).toBe(false)

    // The CLI agrees.
    const status = await runCli(["status"], env())
    expect(status.code).toBe(7)
    expect(status.stdout).toContain("Not logged in")
  })

  it("a new login made through OpenCode after the logout is adopted and used", async () => {
    const { entry } = seedLogin()
    writeAuth({ "kimi-code-plan-cn": entry })
    expect((await runCli(["logout"], env())).code).toBe(0)
    const fresh = emulator.issueTokens()
    const chat = await pluginFetch({
      type: "oauth",
      refresh: fresh.refreshToken,
      access: fresh.accessToken,
      expires: Date.now() + 800_000
    })
    const res = await chat()
    expect(res.status).toBe(200)
    expect(emulator.requests("/coding/v1/chat/completions").at(-1)!.bearer).toBe(fresh.accessToken)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe(fresh.refreshToken)
  })

  it("an auth.json that is not valid JSON is left byte for byte; the copy is still never adopted", async () => {
    const { entry } = seedLogin()
    fs.mkdirSync(path.dirname(authFile()), { recursive: true })
    const broken = `{"kimi-code-plan-cn": ${JSON.stringify(entry)}, "x": ` // truncated
    fs.writeFileSync(authFile(), broken, { mode: 0o600 })
    const r = await runCli(["logout"], env())
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toContain("was left unchanged: it is not valid JSON")
    expect(r.stdout).toContain("opencode auth logout")
    expect(fs.readFileSync(authFile(), "utf8")).toBe(broken)
    const res = await (await pluginFetch(entry))()
    expect(res.status).toBe(401)
  })

  it("without an auth.json it says OpenCode holds nothing; logging out twice is fine", async () => {
    seedLogin()
    const r = await runCli(["logout"], env())
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("OpenCode holds no Kimi login")
    const again = await runCli(["logout"], env())
    expect(again.code).toBe(0)
    expect(again.stdout).toMatch(/nothing to remove/)
  })
})

describe("a process already running when the user logs out elsewhere", () => {
  it("the plugin and the facade stop using the login within a few seconds", async () => {
    seedLogin()
    const chat = await pluginFetch(undefined)
    expect((await chat()).status).toBe(200)
    const client = new KimiOAuthClient({ storageDir: storage(), oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
    disposers.push(() => client.dispose())
    await client.getValidAccessToken()
    expect((await runCli(["logout"], env())).code).toBe(0)
    // Both served from memory a moment ago; within the presence check (2 s), plus a margin, they see the logout.
    const deadline = Date.now() + 10_000
    let status = 200
    let facade: unknown
    while (Date.now() < deadline) {
      status = (await chat()).status
      facade = await client.getValidAccessToken().catch((e: unknown) => e)
      if (status === 401 && typeof facade !== "string") break
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(status).toBe(401)
    expect(facade).toMatchObject({ code: "NOT_LOGGED_IN" })
    expect(fs.existsSync(tokenFile())).toBe(false)
  }, 30_000)
})

describe("not a logout", () => {
  it("a token file damaged (and moved aside) under a running process: it keeps its valid login in memory", async () => {
    const { issued } = seedLogin()
    const client = new KimiOAuthClient({ storageDir: storage(), oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
    disposers.push(() => client.dispose())
    expect(await client.getValidAccessToken()).toBe(issued.accessToken)
    fs.writeFileSync(tokenFile(), " ".repeat(351))
    // Two presence checks: the first finds the damaged file (moved aside), the second finds none.
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, 2_200))
      expect(await client.getValidAccessToken()).toBe(issued.accessToken)
    }
  }, 30_000)
})

describe("the facade's logout()", () => {
  it("is as final: the plugin never adopts OpenCode's copy of that login", async () => {
    const { entry } = seedLogin()
    const client = new KimiOAuthClient({ storageDir: storage(), oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
    disposers.push(() => client.dispose())
    expect(await client.logout()).toBe(true)
    const res = await (await pluginFetch(entry))()
    expect(res.status).toBe(401)
    await expect(client.getValidAccessToken()).rejects.toMatchObject({ code: "NOT_LOGGED_IN" })
  })
})

describe("LogoutMarker", () => {
  it("matches a recorded login's tokens only; an unreadable marker fails closed", () => {
    const dir = storage()
    fs.mkdirSync(dir, { recursive: true })
    expect(isLoggedOut(dir, ["a"])).toBe(false)
    recordLoggedOut(dir, ["rt-old", "at-old"])
    expect(isLoggedOut(dir, ["rt-old"])).toBe(true)
    expect(isLoggedOut(dir, ["x", "at-old"])).toBe(true)
    expect(isLoggedOut(dir, ["rt-new", "at-new"])).toBe(false)
    recordLoggedOut(dir, ["rt-2"])
    expect(isLoggedOut(dir, ["rt-old"])).toBe(true)
    expect(fs.statSync(logoutMarkerPath(dir)).mode & 0o777).toBe(0o600)
    fs.writeFileSync(logoutMarkerPath(dir), "{ damaged")
    expect(isLoggedOut(dir, ["rt-new"])).toBe(true)
  })
})
