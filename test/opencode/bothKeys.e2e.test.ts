/**
 * README's "In OpenCode" gives one configuration per line: V1's `plugin` and
 * OpenCode 2's `plugins`. A config file that carries both (one file read by
 * both lines) must not break OpenCode 1.18.33: the real binary ignores the
 * `plugins` key and still loads the plugin from `plugin`, whose device login
 * (a method only the plugin adds) completes against the emulator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { repoRoot } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, type OpencodeEnv, skipOpencode } from "../support/opencode.js"

describe.skipIf(skipOpencode)("an opencode.json with V1's plugin and V2's plugins keys", () => {
  let e: OpencodeEnv
  let emulator: StartedEmulator
  beforeAll(async () => {
    await ensureOpencode()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 500 })
    e = await makeOpencodeEnv({
      catalog: "bundled",
      plugin: repoRoot,
      config: { plugins: ["opencode-kimi-auth"] },
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
  }, INSTALL_TIMEOUT_MS)
  afterAll(async () => {
    await e?.dispose()
    await emulator?.close()
  })

  it("OpenCode 1.18.33 ignores plugins and loads the plugin from plugin: its device login completes", async () => {
    const r = await e.login("kimi-code-plan-cn", "Kimi device login", { timeoutMs: 90_000 })
    const logs = await e.readLogs()
    expect(logs).not.toMatch(/failed to load plugin/)
    expect(r.code, `${r.stdout}\n${r.stderr}\n${logs}`).toBe(0)
    expect(emulator.stats().deviceGrants).toBe(1)
  }, 120_000)
})
