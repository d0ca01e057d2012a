/**
 * The README's "Working from a clone": the real OpenCode loads this checkout
 * from a `file://` plugin entry, both as the package folder (it follows
 * `exports["./server"]`) and as the built server bundle itself.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { repoRoot } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, makeOpencodeEnv, type OpencodeEnv, skipOpencode } from "../support/opencode.js"

const bundle = path.join(repoRoot, "dist", "bundle", "server.js")

describe.skipIf(skipOpencode)("a local checkout as an OpenCode plugin (file:// entry)", () => {
  const envs: Array<OpencodeEnv> = []
  beforeAll(async () => {
    expect(fs.existsSync(bundle), "run `npm run build` first").toBe(true)
    await ensureOpencode()
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })

  it.each([
    ["the package folder", pathToFileURL(repoRoot).href],
    ["the server bundle", pathToFileURL(bundle).href]
  ])("%s loads: OpenCode lists the plugin's provider", async (_, spec) => {
    const e = await makeOpencodeEnv({ plugin: spec })
    envs.push(e)
    const r = await e.run(["models"])
    const logs = await e.readLogs()
    expect(r.code, logs).toBe(0)
    expect(logs).not.toMatch(/failed to load plugin/)
    // The harness runs with an empty catalog: a Kimi model can only come from the plugin.
    expect(r.stdout).toMatch(/kimi[\w-]*\/kimi-for-coding/)
  }, 120_000)
})
