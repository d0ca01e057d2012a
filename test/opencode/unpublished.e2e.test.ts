/**
 * Why README's "In OpenCode" leads with a local checkout: the package is not
 * on the registry yet (`npm view opencode-kimi-auth` is a 404), and the
 * configuration a newcomer pastes, `{ "plugin": ["opencode-kimi-auth"] }`,
 * makes the real OpenCode 1.18.33 fail its run with "Unexpected server
 * error", the reason only in its log. Skipped once the name is published, or
 * when the registry cannot be asked.
 */
import { spawn, spawnSync } from "node:child_process"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, type OpencodeEnv, skipOpencode } from "../support/opencode.js"

const view = skipOpencode ? undefined : spawnSync("npm", ["view", "opencode-kimi-auth", "name"], { encoding: "utf8", timeout: 60_000 })
const unpublished = view !== undefined && view.status !== 0 && /\bE404\b/.test(view.stderr)
if (view !== undefined && !unpublished) {
  console.warn(`unpublished.e2e: skipped: ${view.status === 0 ? "opencode-kimi-auth is on the registry now" : "the registry could not be asked"}`)
}

/** Runs `opencode auth login -p <provider>` until its first question is on screen, then stops it; that question's text. */
const firstQuestion = (e: OpencodeEnv, provider: string) =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(e.binary.path, ["auth", "login", "-p", provider], { cwd: e.projectDir, env: e.env, stdio: ["ignore", "pipe", "pipe"], detached: true })
    let out = ""
    const stop = (f: () => void) => {
      clearTimeout(timer)
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {}
      f()
    }
    const timer = setTimeout(() => stop(() => reject(new Error(`no question within 60 s: ${out}`))), 60_000)
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, "")
      const q = /(Enter your API key|Login method[\s\S]*Kimi API key)/.exec(out)
      if (q) stop(() => resolve(q[1]!))
    })
    child.on("error", (err) => stop(() => reject(err)))
  })

describe.skipIf(skipOpencode || !unpublished)("the package name before publication, as a newcomer pastes it", () => {
  let e: OpencodeEnv
  beforeAll(async () => {
    await ensureOpencode()
    e = await makeOpencodeEnv({ catalog: "bundled", config: { plugin: ["opencode-kimi-auth"] } })
  }, INSTALL_TIMEOUT_MS)
  afterAll(async () => {
    await e?.dispose()
  })

  it("opencode run fails with \"Unexpected server error\" and the login offers only the API key: the plugin never loaded", async () => {
    const r = await e.run(["run", "--print-logs", "-m", "kimi-code-plan-cn/kimi-for-coding", "Hello"], { timeoutMs: 120_000 })
    expect(r.code).not.toBe(0)
    expect(r.stdout + r.stderr).toMatch(/Unexpected server error/)
    // Without the plugin the provider has no login, so no model: the cause is only in the log.
    expect(r.stderr).toMatch(/Model not found: kimi-code-plan-cn\/kimi-for-coding/)
    // The login screen goes straight to the API key: no method picker, no "Kimi device login".
    expect(await firstQuestion(e, "kimi-code-plan-cn")).toBe("Enter your API key")
  }, 150_000)
})
