/**
 * The plugin inside the registry's OpenCode 2.0 preview server,
 * `@opencode-ai/cli-linux-x64@1.18.18` (binary `lildax`, installed on first
 * use into test/opencode2/fixture). That server has no `run` and its plugin
 * `ctx` has no `session` (so no request hooks): what it can show is that the
 * package's OpenCode 2 entry loads, registers the device login on both Kimi
 * providers, and that a login started over its HTTP API reaches the package's
 * token store. What it cannot do is recorded in test/opencode/NOTES.md.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { repoRoot } from "../support/cli.js"
import { ensureRegistryServer, INSTALL_TIMEOUT_MS, makeV2Env, registryMissing, type V2Env } from "../support/opencode2.js"

const missing = registryMissing()
if (missing !== undefined) console.warn(`skipping the OpenCode 2 registry-server suite: ${missing}`)

describe.skipIf(missing !== undefined)("opencode-kimi-auth inside @opencode-ai/cli 1.18.18 (serve only)", () => {
  let bin: string
  let emulator: StartedEmulator
  const envs: Array<V2Env> = []
  beforeAll(async () => {
    expect(fs.existsSync(path.join(repoRoot, "dist", "bundle", "server-v2.js")), "run `npm run build` first").toBe(true)
    bin = await ensureRegistryServer()
    emulator = await start({ interval: 1, autoApproveAfterMillis: 1000 })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it("loads the OpenCode 2 entry, registers the device login on both providers, and a connect runs the package's device flow", async () => {
    const e = await makeV2Env({
      bin,
      plugin: path.join(repoRoot, "server.js"),
      apiBaseUrl: emulator.apiBaseUrl,
      env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl, DEBUG: "opencode-kimi-auth:*" }
    })
    envs.push(e)
    const server = await e.serve()
    for (const id of ["kimi-code-plan-cn", "kimi-code-plan-global"]) {
      const data = await server.waitForIntegration(id, (d) => d.methods.some((m: any) => m.id === "kimi-device"))
      expect(data.methods).toContainEqual({ id: "kimi-device", type: "oauth", label: "Kimi device login" })
    }
    const before = emulator.deviceCodes().length
    const attempt = await server.api("POST", "/api/integration/kimi-code-plan-cn/connect/oauth", { methodID: "kimi-device", inputs: {} })
    const tokenFile = path.join(e.home, ".opencode-kimi-auth", "oauth.json")
    const until = Date.now() + 20_000
    while (!fs.existsSync(tokenFile) && Date.now() < until) await new Promise((r) => setTimeout(r, 200))
    // authorize ran: the package's device flow asked the emulator for a code ...
    expect(emulator.deviceCodes().length, `${attempt.status} ${attempt.text}`).toBe(before + 1)
    // ... and the approved login reached the package's token store (one family for every host).
    expect(JSON.parse(fs.readFileSync(tokenFile, "utf8")).region).toBe("mainland-cn")
    // 1.18.18 does not wrap a `setup` plugin's authorize: the connect answers 500 and stores no credential
    // (NOTES.md, "OpenCode 2"). If a later build does, the row must hold the marker, never the refresh token.
    if (attempt.status === 200) {
      await server.waitForIntegration("kimi-code-plan-cn", (d) => d.connections.length > 0)
      for (const row of await e.credentials()) expect(row.value.refresh).toBe("opencode-kimi-auth:token-file")
    } else {
      expect(attempt.status).toBe(500)
      expect((await server.api("GET", "/api/integration/kimi-code-plan-cn")).json.data.connections).toEqual([])
    }
    console.info(`@opencode-ai/cli 1.18.18: POST connect/oauth answered ${attempt.status}`)
    await server.stop()
  }, 180_000)
})
