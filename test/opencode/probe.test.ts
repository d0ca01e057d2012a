/**
 * The real OpenCode 1.18.33 binary hosting the throwaway probe plugin
 * (test/opencode/probe/plugin.mjs) against a fake chat server on loopback.
 * Proves the plugin shape and the harness; see test/opencode/NOTES.md.
 * Skipped with SKIP_OPENCODE=1.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import {
  ensureOpencode,
  INSTALL_TIMEOUT_MS,
  makeOpencodeEnv,
  skipOpencode,
  startFakeChatServer,
  type FakeChatServer,
  type OpencodeEnv
} from "../support/opencode.js"

const here = path.dirname(fileURLToPath(import.meta.url))
const probePlugin = path.join(here, "probe", "plugin.mjs")

interface ProbeEvent {
  readonly event: string
  readonly [key: string]: unknown
}

const readProbeLog = (file: string): Array<ProbeEvent> =>
  fs.existsSync(file)
    ? fs
        .readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as ProbeEvent)
    : []

const RUN_TIMEOUT = 90_000

describe.skipIf(skipOpencode)("OpenCode 1.18.33 hosts the probe auth plugin", () => {
  let server: FakeChatServer
  const envs: Array<OpencodeEnv> = []

  const probeEnv = async (extra: { auth?: boolean; env?: Record<string, string> } = {}) => {
    const e = await makeOpencodeEnv({
      plugin: probePlugin,
      pluginOptions: { baseURL: server.baseURL },
      env: extra.env ?? {},
      ...(extra.auth
        ? { auth: { kimi: { type: "oauth", refresh: "seed-refresh", access: "seed-access", expires: Date.now() + 3_600_000 } } }
        : {})
    })
    envs.push(e)
    const log = path.join(e.root, "probe.jsonl")
    return { e, log, env: { PROBE_LOG: log } }
  }

  beforeAll(async () => {
    await ensureOpencode()
    server = await startFakeChatServer()
  }, INSTALL_TIMEOUT_MS)

  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })

  afterAll(async () => {
    await server?.close()
  })

  it(
    "auth login runs the oauth method end to end and stores the tokens in auth.json (0600)",
    async () => {
      const { e, log, env } = await probeEnv()
      const r = await e.login("kimi", "Kimi device login", { env })
      expect(r.timedOut).toBe(false)
      expect(r.code, r.stdout + r.stderr).toBe(0)
      expect(r.stdout).toContain("Go to: http://127.0.0.1:9/device?user_code=ABCD-EFGH")
      expect(r.stdout).toContain("Enter code: ABCD-EFGH")
      expect(r.stdout).toContain("Login successful")

      const auth = await e.readAuth()
      expect(auth?.kimi).toMatchObject({ type: "oauth", refresh: "probe-refresh-1", access: "probe-access-1" })
      expect(fs.statSync(e.authFile).mode & 0o777).toBe(0o600)

      const events = readProbeLog(log).map((x) => x.event)
      // config hook before the method; no loader during `auth login`; dispose at exit
      expect(events).toEqual(["server", "config", "authorize", "callback-start", "callback-end", "dispose", "dispose-end"])
      expect(readProbeLog(log)[0]).toMatchObject({ options: { baseURL: server.baseURL } })
    },
    RUN_TIMEOUT
  )

  it(
    "opencode run answers through the loader's fetch, which sets the plugin's headers",
    async () => {
      const { e, log, env } = await probeEnv({ auth: true })
      const before = server.chatRequests().length
      const r = await e.prompt("kimi/kimi-for-coding", "hi", { env })
      expect(r.code, r.stdout + r.stderr + (await e.readLogs())).toBe(0)
      expect(r.stdout.trim()).toBe("Hello from fake Kimi")

      const seen = server.chatRequests().slice(before)
      expect(seen.length).toBe(2) // the answer and the session title
      for (const req of seen) {
        expect(req.headers["authorization"]).toBe("Bearer seed-access")
        expect(req.headers["x-probe"]).toBe("1")
        expect(req.headers["user-agent"]).toBe("probe-agent/1")
        expect(req.json).toMatchObject({ model: "kimi-for-coding", stream: true })
      }

      const fetches = readProbeLog(log).filter((x) => x.event === "fetch")
      expect(fetches.length).toBe(2)
      for (const f of fetches) {
        // what OpenCode hands the loader's fetch
        expect(f).toMatchObject({ inputType: "string", headersType: "object:Object", bodyType: "string", method: "POST" })
        expect((f.headers as Record<string, string>)["authorization"]).toBe("Bearer probe-api-key") // the loader's apiKey
      }
      const order = readProbeLog(log).map((x) => x.event)
      expect(order.indexOf("config")).toBeLessThan(order.indexOf("loader"))
      expect(order.at(-2)).toBe("dispose")
    },
    RUN_TIMEOUT
  )

  it(
    "a 401 from the plugin fetch makes opencode run exit 1 with the message and no crash dump",
    async () => {
      const { e, log, env } = await probeEnv({ auth: true })
      const r = await e.prompt("kimi/kimi-for-coding", "hi", { env: { ...env, PROBE_FETCH_MODE: "401" } })
      expect(r.timedOut).toBe(false)
      expect(r.code).toBe(1)
      expect(r.stdout.trim()).toBe("")
      expect(r.stderr).toContain("Error: probe: 401 from plugin fetch")
      expect(r.stderr).not.toMatch(/^\s+at /m) // no stack trace
      expect(r.stderr).not.toMatch(/panic|segmentation fault|Bun v\d/i)
      // not retried: one call for the answer, one for the title
      expect(readProbeLog(log).filter((x) => x.event === "fetch").length).toBe(2)
    },
    RUN_TIMEOUT
  )

  it(
    "a throw from the plugin fetch also exits 1 with the thrown message",
    async () => {
      const { e, env } = await probeEnv({ auth: true })
      const r = await e.prompt("kimi/kimi-for-coding", "hi", { env: { ...env, PROBE_FETCH_MODE: "throw" } })
      expect(r.code).toBe(1)
      expect(r.stderr).toContain("Error: probe: refresh failed, run `kimi-auth login` (PROBE_THROW)")
      expect(r.stderr).not.toMatch(/^\s+at /m)
    },
    RUN_TIMEOUT
  )

  it(
    "bundled catalog: one module with two named { id, server } exports serves both Kimi providers; config blocks and variants merge into the catalog's",
    async () => {
      const e = await makeOpencodeEnv({ plugin: path.join(here, "probe", "regions.mjs"), catalog: "bundled" })
      envs.push(e)
      const log = path.join(e.root, "regions.jsonl")
      const env = { PROBE_LOG: log, PROBE_BASE_URL: server.baseURL, PROBE_CONFIG_FETCH: "1", PROBE_VARIANTS: "1" }
      for (const provider of ["kimi-code-plan-cn", "kimi-code-plan-global"]) {
        const r = await e.login(provider, "Kimi device login", { env })
        expect(r.code, r.stdout + r.stderr).toBe(0)
        expect(r.stdout).toContain(`Go to: http://127.0.0.1:9/${provider}`)
      }
      const auth = (await e.readAuth()) as Record<string, { access: string }>
      expect(auth["kimi-code-plan-cn"]?.access).toBe("a-kimi-code-plan-cn")
      expect(auth["kimi-code-plan-global"]?.access).toBe("a-kimi-code-plan-global")

      const models = await e.run(["models", "kimi-code-plan-cn", "--verbose"], { env })
      expect(models.code, models.stderr).toBe(0)
      for (const id of ["k3", "k3-256k", "kimi-for-coding", "kimi-for-coding-highspeed", "probe-extra"]) {
        expect(models.stdout).toContain(`kimi-code-plan-cn/${id}\n`)
      }
      expect(models.stdout).toMatch(/"off": \{\s*"thinking": \{\s*"type": "disabled"/)

      const run = await e.run(["run", "-m", "kimi-code-plan-global/kimi-for-coding", "--variant", "off", "hi"], { env, timeoutMs: RUN_TIMEOUT })
      expect(run.code, run.stderr).toBe(0)
      const events = readProbeLog(log)
      const servers = events.filter((x) => x.event === "server").map((x) => x["provider"])
      expect(servers.filter((p) => p === "kimi-code-plan-cn").length).toBe(servers.filter((p) => p === "kimi-code-plan-global").length)
      const fetches = events.filter((x) => x.event === "fetch" && x["provider"] === "kimi-code-plan-global")
      expect(fetches.length).toBeGreaterThanOrEqual(1)
      expect(fetches.every((x) => x["where"] === "config")).toBe(true) // the config-hook fetch beats the loader's
      expect(fetches.map((x) => String(x["url"]))).toContain("https://api.kimi.ai/coding/v1/chat/completions")
      const bodies = fetches.map((x) => x["body"] as Record<string, unknown>)
      expect(bodies.find((b) => b["title"] === false)?.["thinking"]).toEqual({ type: "disabled" })
      expect(bodies.find((b) => b["title"] === true)?.["reasoning_effort"]).toBe("low")
      const loader = events.find((x) => x.event === "loader" && x["provider"] === "kimi-code-plan-global")
      expect(loader?.["models"]).toEqual(["k3", "k3-256k", "kimi-for-coding", "kimi-for-coding-highspeed", "probe-extra"])
    },
    RUN_TIMEOUT * 2
  )
})
