/**
 * Installing the plugin the ways an OpenCode 2.1 user does, in the real
 * 2.1.2 (test/opencode/NOTES.md, "OpenCode 2.1", "Installing"):
 *
 * - README's line, `"plugins": ["/abs/checkout/plugin"]` (a one-file folder),
 *   loads, and so does the checkout folder; a file path is refused by the host;
 * - a Git spec built by npm through the package's `prepare` script
 *   (`npm install git+file://<clone>`: the clone's devDependencies come from
 *   the registry, nothing from GitHub) gives a folder that loads and answers;
 * - `opencode plugin add git+file://<clone>`: 2.1.2 prepares a Git package
 *   that has scripts by spawning itself with a `/$bunfs/bin/npm-cli.js` that
 *   its binary does not contain, so it fails (`git dep preparation failed`)
 *   for this and any package with a build step. The test pins that; if a
 *   later host installs it, the installed plugin must answer.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { repoRoot } from "../support/cli.js"
import { packTarball } from "../../bench/footprint.mjs"
import { type ServedVersion, startLocalRegistry } from "../support/localRegistry.js"
import { quickStartEntry } from "../support/readmeQuickStart.js"
import { ensureOpencode2, INSTALL_TIMEOUT_MS, makeV2Env, opencode2Missing, type V2Env, withEmulatorSuite } from "../support/opencode2.js"

const CN = "kimi-code-plan-cn"
const GREETING = "Hello from the Kimi emulator"
const missing = opencode2Missing()
if (missing !== undefined) console.warn(`skipping the OpenCode 2.1 install suite: ${missing}`)

describe.skipIf(missing !== undefined)("installing opencode-kimi-auth in OpenCode 2.1.2", () => {
  let bin: string
  let work: string
  let clone: string
  const envs: Array<V2Env> = []
  const suite = withEmulatorSuite(async () => {
    bin = await ensureOpencode2()
    work = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-v21-install-"))
    // A clone of the committed tree (what a Git spec fetches): no dist/, no node_modules.
    clone = path.join(work, "clone")
    execFileSync("git", ["clone", "--quiet", repoRoot, clone])
    expect(fs.existsSync(path.join(clone, "dist"))).toBe(false)
  }, envs)
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true })
  })

  const world = async (plugin: string | undefined, env: Record<string, string> = {}) => {
    const e = await makeV2Env({ bin, plugin, apiBaseUrl: suite.emulator.apiBaseUrl, env: { KIMI_OAUTH_HOST: suite.emulator.oauthHost, KIMI_CODE_BASE_URL: suite.emulator.apiBaseUrl, ...env } })
    envs.push(e)
    return e
  }
  const loginAndRun = async (e: V2Env) => {
    const login = await e.login(CN)
    expect(login.code, `${login.stdout}\n${login.stderr}\n${e.logs().slice(-3000)}`).toBe(0)
    const r = await e.run(`${CN}/kimi-for-coding`, "Say hello")
    expect(r.stdout, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`).toContain(GREETING)
  }

  it("README's line loads: the checkout's one-file `plugin` folder in `plugins`; the checkout folder itself loads too; a server.js listed as a file is refused by the host", async () => {
    // README's quick-start line, read from README (test/support/readmeQuickStart.ts): the checkout's plugin folder,
    // which holds one file: 2.1.2 watches the folder it loads, every file below it (the checkout's own folder
    // has node_modules and .git; NOTES.md, "Cost").
    const folder = quickStartEntry("plugins")
    expect(folder).toBe(path.join(repoRoot, "plugin"))
    expect(fs.readdirSync(folder)).toEqual(["server.js"])
    const e = await world(folder)
    await loginAndRun(e)
    expect(e.logs()).toContain(`message="watcher started" path=${folder} type=directory`)
    // A configuration written before the plugin folder: the checkout folder.
    await loginAndRun(await world(repoRoot))
    const file = await world(path.join(repoRoot, "plugin", "server.js"))
    const r = await file.login(CN)
    expect(r.code).not.toBe(0)
    expect(`${r.stdout}\n${r.stderr}`).toContain("Authentication method not found: kimi-device")
  }, 240_000)

  it("a Git spec built through `prepare` (npm install git+file://<clone>, registry only) loads and answers", async () => {
    const consumer = path.join(work, "consumer")
    fs.mkdirSync(consumer)
    fs.writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true }))
    const r = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", `git+file://${clone}`], {
      cwd: consumer,
      encoding: "utf8",
      timeout: INSTALL_TIMEOUT_MS,
      // Without the npm_* variables `npx vitest` sets: the Git dep's own `npm install` (pacote's preparation)
      // would take npm_config_local_prefix, this checkout, as its project and install into its node_modules.
      env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)))
    })
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0)
    const installed = path.join(consumer, "node_modules", "opencode-kimi-auth")
    expect(fs.existsSync(path.join(installed, "dist", "bundle", "server-v2.js")), "prepare built dist/").toBe(true)
    await loginAndRun(await world(installed))
  }, INSTALL_TIMEOUT_MS)

  it("`opencode plugin add git+file://<clone>`: 2.1.2 cannot prepare a Git package with a build step (its npm is missing from the binary); a host that can must load it", async () => {
    const e = await world(undefined)
    const r = await e.cli(["plugin", "add", `git+file://${clone}`], { timeoutMs: INSTALL_TIMEOUT_MS })
    const out = `${r.stdout}\n${r.stderr}`
    if (r.code !== 0) {
      expect(out).toContain("git dep preparation failed")
      console.info("OpenCode 2.1.2: `plugin add git+file://…` failed with `git dep preparation failed` (the host's own npm is missing; NOTES.md)")
      return
    }
    expect(fs.readFileSync(e.configFile, "utf8")).toContain(`git+file://${clone}`)
    await loginAndRun(e)
  }, INSTALL_TIMEOUT_MS)

  it("`opencode plugin add opencode-kimi-auth`, as once published: this checkout packed and served by a local registry (every other package from the public one) installs, loads and answers", async () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as ServedVersion["manifest"]
    const registry = await startLocalRegistry([{ manifest, tarball: packTarball(work) }])
    try {
      const e = await world(undefined, { npm_config_registry: registry.url })
      const r = await e.cli(["plugin", "add", "opencode-kimi-auth"], { timeoutMs: INSTALL_TIMEOUT_MS })
      expect(r.code, `${r.stdout}\n${r.stderr}\n${e.logs().slice(-3000)}`).toBe(0)
      expect(fs.readFileSync(e.configFile, "utf8")).toContain("opencode-kimi-auth")
      // The host asked this registry for the package and took its tarball (the packed checkout).
      expect(registry.requests).toContain("/opencode-kimi-auth")
      expect(registry.requests).toContain(`/opencode-kimi-auth/-/opencode-kimi-auth-${manifest.version}.tgz`)
      await loginAndRun(e)
    } finally {
      await registry.close()
    }
  }, INSTALL_TIMEOUT_MS)
})
