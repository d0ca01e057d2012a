/**
 * README's quick start, as a new user follows it: the configuration line it
 * gives for OpenCode 2.1 and for OpenCode 1.18, read from README itself and
 * loaded into the real hosts (2.1.2 and 1.18.33, each with its own data
 * folder). Proof that the plugin loaded: its device login, a method only the
 * plugin adds, completes against the emulator, and a run answers.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, skipOpencode } from "../support/opencode.js"
import { ensureOpencode2, makeV2Env, opencode2Missing } from "../support/opencode2.js"
import { quickStartEntry } from "../support/readmeQuickStart.js"

const CN = "kimi-code-plan-cn"
const GREETING = "Hello from the Kimi emulator"

describe("README's quick start: the configuration line of each OpenCode line", () => {
  let emulator: StartedEmulator | undefined
  const cleanups: Array<() => Promise<void>> = []
  const emulatorEnv = async () => {
    emulator ??= await start({ interval: 1, autoApproveAfterMillis: 500 })
    return { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
  }
  afterAll(async () => {
    for (const c of cleanups.splice(0)) await c()
    await emulator?.close()
  })

  it("parses: one entry each, naming the checkout folder", () => {
    expect(path.isAbsolute(quickStartEntry("plugins"))).toBe(true)
    expect(quickStartEntry("plugin")).toMatch(/^file:\/\//)
  })

  it.skipIf(opencode2Missing() !== undefined)("OpenCode 2.1.2 loads README's `plugins` line: its device login and a run work", async () => {
    const env = await emulatorEnv()
    const e = await makeV2Env({ bin: await ensureOpencode2(), plugin: quickStartEntry("plugins"), apiBaseUrl: emulator!.apiBaseUrl, env })
    cleanups.push(() => e.dispose())
    const login = await e.login(CN)
    expect(login.code, `${login.stdout}\n${login.stderr}\n${e.logs().slice(-3000)}`).toBe(0)
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello")
    expect(r.stdout, `${r.stdout}\n${r.stderr}`).toContain(GREETING)
  }, INSTALL_TIMEOUT_MS)

  it.skipIf(skipOpencode)("OpenCode 1.18.33 loads README's `plugin` line: its device login and a run work", async () => {
    await ensureOpencode()
    const e = await makeOpencodeEnv({ plugin: quickStartEntry("plugin"), catalog: "bundled", env: await emulatorEnv() })
    cleanups.push(() => e.dispose())
    const login = await e.login(CN, "Kimi device login", { timeoutMs: 90_000 })
    expect(await e.readLogs()).not.toMatch(/failed to load plugin/)
    expect(login.code, `${login.stdout}\n${login.stderr}`).toBe(0)
    expect(fs.existsSync(path.join(e.home, ".opencode-kimi-auth", "oauth.json"))).toBe(true)
    const r = await e.prompt(`${CN}/kimi-for-coding`, "Say hello")
    expect(r.stdout, `${r.stdout}\n${r.stderr}`).toContain(GREETING)
  }, INSTALL_TIMEOUT_MS)
})
