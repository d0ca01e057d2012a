/**
 * The README's "Working from a clone": the real OpenCode loads this checkout
 * from a `file://` plugin entry, both as the package folder (it follows
 * `exports["./server"]`) and as the built server bundle itself. Proof that the
 * plugin runs: its device login (a method only the plugin adds to the
 * catalog's provider) completes against the emulator.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { repoRoot } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, type OpencodeEnv, skipOpencode } from "../support/opencode.js"

const bundle = path.join(repoRoot, "dist", "bundle", "server.js")

describe.skipIf(skipOpencode)("a local checkout as an OpenCode plugin (file:// entry)", () => {
  const envs: Array<OpencodeEnv> = []
  let emulator: StartedEmulator
  beforeAll(async () => {
    expect(fs.existsSync(bundle), "run `npm run build` first").toBe(true)
    await ensureOpencode()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 500 })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it.each([
    ["the package folder", pathToFileURL(repoRoot).href],
    ["the server bundle", pathToFileURL(bundle).href]
  ])("%s loads: the plugin's device login works in opencode auth login", async (_, spec) => {
    const e = await makeOpencodeEnv({
      plugin: spec,
      catalog: "bundled",
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
    })
    envs.push(e)
    const before = emulator.stats().deviceGrants
    const r = await e.login("kimi-code-plan-cn", "Kimi device login", { timeoutMs: 90_000 })
    const logs = await e.readLogs()
    expect(logs).not.toMatch(/failed to load plugin/)
    expect(r.code, `${r.stdout}\n${r.stderr}\n${logs}`).toBe(0)
    expect(emulator.stats().deviceGrants).toBe(before + 1)
    expect(fs.existsSync(path.join(e.home, ".opencode-kimi-auth", "oauth.json"))).toBe(true)
  }, 120_000)
})
