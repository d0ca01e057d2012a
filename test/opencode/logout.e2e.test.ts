/**
 * Logout means logout inside the real OpenCode 1.18.33 binary: after
 * `kimi-auth logout` (child process, the same HOME and XDG folders) the next
 * `opencode run` does not use the old login, not even when OpenCode's
 * `auth.json` still (or again) holds its copy: the plugin does not rebuild
 * `oauth.json` from it, `kimi-auth status` stays "not logged in", and no
 * request with the old token reaches Kimi. Skipped with SKIP_OPENCODE=1.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, skipOpencode, type OpencodeEnv } from "../support/opencode.js"
import { repoRoot, runCli } from "../support/cli.js"

const CN = "kimi-code-plan-cn"
const RUN_TIMEOUT = 120_000

describe.skipIf(skipOpencode)("kimi-auth logout, then OpenCode 1.18.33", () => {
  let emulator: StartedEmulator
  const envs: Array<OpencodeEnv> = []

  beforeAll(async () => {
    expect(fs.existsSync(path.join(repoRoot, "dist", "bundle", "server.js")), "run `npm run build` first").toBe(true)
    await ensureOpencode()
    emulator = await start({ interval: 1 })
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await emulator?.close()
  })

  it(
    "the next opencode run does not use the old login, even with its copy put back into auth.json",
    async () => {
      const e = await makeOpencodeEnv({
        plugin: repoRoot,
        catalog: "bundled",
        env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl }
      })
      envs.push(e)
      const tokenFile = path.join(e.home, ".opencode-kimi-auth", "oauth.json")
      const issued = emulator.issueTokens()
      const expiresAt = Math.floor(Date.now() / 1000) + 800
      fs.mkdirSync(path.dirname(tokenFile), { recursive: true, mode: 0o700 })
      fs.writeFileSync(
        tokenFile,
        JSON.stringify({ access_token: issued.accessToken, refresh_token: issued.refreshToken, expires_in: 900, expires_at: expiresAt }),
        { mode: 0o600 }
      )
      const copy = { type: "oauth" as const, refresh: issued.refreshToken, access: issued.accessToken, expires: expiresAt * 1000 }
      await e.writeAuth({ [CN]: copy })

      const before = await e.prompt(`${CN}/kimi-for-coding`, "Say hello")
      expect(before.code, before.stderr).toBe(0)

      const cliEnv: NodeJS.ProcessEnv = { ...process.env, ...e.env, NO_COLOR: "1" }
      delete cliEnv["OPENCODE_KIMI_AUTH_DIR"]
      const out = await runCli(["logout"], cliEnv)
      expect(out.code, out.stderr).toBe(0)
      expect(out.stdout).toContain("Logged out")
      expect(out.stdout).toMatch(new RegExp(`Removed OpenCode.s copy of the login \\(${CN}`))
      expect((await e.readAuth()) ?? {}).not.toHaveProperty(CN)

      for (const round of ["auth.json without the copy", "the copy put back into auth.json"]) {
        if (round.startsWith("the copy")) await e.writeAuth({ [CN]: copy })
        emulator.clearRequests()
        const r = await e.prompt(`${CN}/kimi-for-coding`, "Say hello")
        const text = `${r.stdout}\n${r.stderr}\n${await e.readLogs()}`
        expect(r.stdout, round).not.toContain("Hello from the Kimi emulator")
        expect(emulator.requests("/coding/v1/chat/completions").filter((c) => c.bearer === issued.accessToken), round).toEqual([])
        expect(fs.existsSync(tokenFile), `${round}: ${text}`).toBe(false)
        const status = await runCli(["status"], cliEnv)
        expect(status.code, round).toBe(7)
      }
    },
    RUN_TIMEOUT * 3
  )
})
