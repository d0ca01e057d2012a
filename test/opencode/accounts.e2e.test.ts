/**
 * Accounts in the real OpenCode 1.18.33 (issue 21): both regions at once,
 * each provider on its region's active account; a device login of a second
 * Kimi user in OpenCode adds an account beside the first (whose file stays
 * byte for byte) and is used; `kimi-auth switch` changes the account the
 * next `opencode run` uses.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { encodeRegistry } from "../../src/light/AccountRegistry.js"
import { seedAccountLogin } from "../support/accounts.js"
import { runCli } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, type OpencodeEnv, skipOpencode } from "../support/opencode.js"
import { repoRoot } from "../support/cli.js"

const CN = "kimi-code-plan-cn"
const GLOBAL = "kimi-code-plan-global"
const RUN_TIMEOUT = 120_000

describe.skipIf(skipOpencode)("accounts inside OpenCode 1.18.33", () => {
  let emulator: StartedEmulator
  const envs: Array<OpencodeEnv> = []

  beforeAll(async () => {
    expect(fs.existsSync(path.join(repoRoot, "dist", "bundle", "server.js")), "run `npm run build` first").toBe(true)
    await ensureOpencode()
    emulator = await start({
      interval: 1,
      users: [
        { userId: "u-ada", nickname: "Ada", email: "ada@example.com" },
        { userId: "u-bob", nickname: "Bob", email: "bob@example.com" },
        { userId: "u-gil", nickname: "Gil", email: "gil@example.ai", region: "global" }
      ]
    })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  const kimiEnv = async () => {
    const e = await makeOpencodeEnv({
      plugin: repoRoot,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    envs.push(e)
    const storage = path.join(e.home, ".opencode-kimi-auth")
    fs.mkdirSync(storage, { recursive: true, mode: 0o700 })
    return { e, storage }
  }

  const seed = (storage: string, file: string, userId: string, region: "mainland-cn" | "global") =>
    seedAccountLogin(emulator, storage, file, userId, region)

  const bearersOf = async (e: OpencodeEnv, model: string) => {
    emulator.clearRequests()
    const r = await e.prompt(model, "Say hello")
    expect(r.code, `${r.stdout}\n${r.stderr}\n${await e.readLogs()}`).toBe(0)
    expect(r.stdout).toContain("Hello from the Kimi emulator")
    return new Set(emulator.requests("/coding/v1/chat/completions").map((c) => c.bearer))
  }

  it("both regions at once: each provider uses its region's active account", async () => {
    const { e, storage } = await kimiEnv()
    const bob = seed(storage, "oauth.json", "u-bob", "mainland-cn")
    const gil = seed(storage, "oauth.global.u-gil.json", "u-gil", "global")
    fs.writeFileSync(path.join(storage, "accounts.json"), encodeRegistry({
      accounts: [
        { file: "oauth.json", userId: "u-bob", nickname: "Bob", email: undefined, region: "mainland-cn", addedAt: undefined },
        { file: "oauth.global.u-gil.json", userId: "u-gil", nickname: "Gil", email: undefined, region: "global", addedAt: undefined }
      ],
      active: { "mainland-cn": "oauth.json", global: "oauth.global.u-gil.json" },
      current: "oauth.global.u-gil.json"
    }), { mode: 0o600 })
    expect(await bearersOf(e, `${GLOBAL}/kimi-for-coding`)).toEqual(new Set([gil]))
    expect(await bearersOf(e, `${CN}/kimi-for-coding`)).toEqual(new Set([bob]))
  }, RUN_TIMEOUT)

  it("a second user's device login adds an account beside the first, is used, and kimi-auth switch goes back", async () => {
    const { e, storage } = await kimiEnv()
    const ada = seed(storage, "oauth.json", "u-ada", "mainland-cn")
    const adaFile = fs.readFileSync(path.join(storage, "oauth.json"), "utf8")
    const before = emulator.deviceCodes().length
    const login = e.login(CN, "Kimi device login")
    for (let i = 0; i < 400 && emulator.deviceCodes().length === before; i++) await new Promise((r) => setTimeout(r, 50))
    expect(emulator.approve(emulator.deviceCodes().at(-1)!.userCode, "u-bob")).toBe(true)
    const r = await login
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0)
    expect(fs.readFileSync(path.join(storage, "oauth.json"), "utf8")).toBe(adaFile)
    const bob = JSON.parse(fs.readFileSync(path.join(storage, "oauth.mainland-cn.u-bob.json"), "utf8")).access_token as string
    expect(await bearersOf(e, `${CN}/kimi-for-coding`)).toEqual(new Set([bob]))

    const sw = await runCli(["switch", "ada"], { ...process.env, ...e.env })
    expect(sw.code, sw.stderr).toBe(0)
    expect(await bearersOf(e, `${CN}/kimi-for-coding`)).toEqual(new Set([ada]))
    expect(emulator.stats().spentTokenReplays).toBe(0)
  }, RUN_TIMEOUT)
})
