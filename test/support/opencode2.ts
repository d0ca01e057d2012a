/**
 * Test harness for the two real OpenCode 2 hosts (test/opencode/NOTES.md,
 * "OpenCode 2"):
 *
 * - the compiled 2.0 preview (upstream's `v2` branch, `@opencode-ai/cli`
 *   1.18.4, with `run`), shipped as an `.xz` beside the project
 *   (`../shared/opencode2/opencode2-v2preview-linux-x64.xz`, or `OPENCODE2_XZ`):
 *   {@link ensurePreview} decompresses it once into a cache folder under the OS
 *   temp folder (locked across vitest workers, checked against its sha256);
 *   {@link previewMissing} says why the suite is skipped when the file is not there;
 * - the registry's `@opencode-ai/cli-linux-x64@1.18.18` server (no `run`):
 *   {@link ensureRegistryServer} installs `test/opencode2/fixture` once with
 *   `npm ci`, under a lock, like the V1 fixture.
 *
 * {@link makeV2Env} builds an isolated world (HOME, XDG_*, an `opencode.json`
 * with `plugins` and both Kimi providers pointed at the emulator) and drives
 * the host: `serve` over HTTP (`/api/integration/...`), `run`, and the
 * credential table of its SQLite database (read with Bun's `bun:sqlite`,
 * through OpenCode 1.18.33 acting as Bun).
 *
 * `SKIP_OPENCODE=1` (every host) or `SKIP_OPENCODE2=1` (these two) skips the suites.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { ensureOpencode, INSTALL_TIMEOUT_MS, repoRoot, stripAnsi, withDirLock } from "./opencode.js"

export { INSTALL_TIMEOUT_MS }

/** The preview's `.xz`: `OPENCODE2_XZ`, else `../shared/opencode2/` beside the checkout. */
export const previewXz = process.env.OPENCODE2_XZ ??
  path.resolve(repoRoot, "..", "shared", "opencode2", "opencode2-v2preview-linux-x64.xz")

/** sha256 of the decompressed preview binary (../shared/opencode2/README.md). */
export const PREVIEW_SHA256 = "b9f26d1a95befb1242f6c0ccde8eadbe51d7c4021dc0bdc9bf62a70295512bf0"

/** The registry server's version, pinned in `test/opencode2/fixture`. */
export const REGISTRY_VERSION = "1.18.18"

export const fixtureDir = path.join(repoRoot, "test", "opencode2", "fixture")

const skipAll = (): string | undefined =>
  /^(1|true|yes)$/i.test(process.env.SKIP_OPENCODE ?? "") ? "SKIP_OPENCODE is set"
    : /^(1|true|yes)$/i.test(process.env.SKIP_OPENCODE2 ?? "") ? "SKIP_OPENCODE2 is set"
    : undefined

/** Why the preview suite cannot run here, or `undefined` when it can. */
export const previewMissing = (): string | undefined => {
  const skip = skipAll()
  if (skip !== undefined) return skip
  if (process.platform !== "linux" || process.arch !== "x64") return `the preview binary is linux-x64 only (this is ${process.platform}-${process.arch})`
  if (!fs.existsSync(previewXz)) return `${previewXz} is missing (set OPENCODE2_XZ to the OpenCode 2 preview .xz)`
  return undefined
}

/** Why the registry-server suite cannot run here, or `undefined`. */
export const registryMissing = (): string | undefined => {
  const skip = skipAll()
  if (skip !== undefined) return skip
  if (process.platform !== "linux" || process.arch !== "x64") return `@opencode-ai/cli-linux-x64 is linux-x64 only (this is ${process.platform}-${process.arch})`
  return undefined
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** The V2 harness's lock timeouts are plain errors (not the V1 harness's OpencodeUnavailableError). */
const plainError = (message: string) => new Error(message)

const exec = (cmd: string, args: ReadonlyArray<string>, options: { cwd?: string; stdout?: number } = {}) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      stdio: ["ignore", options.stdout ?? "pipe", "pipe"]
    })
    let output = ""
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", (e) => resolve({ code: -1, output: output + String(e) }))
    child.on("close", (code) => resolve({ code, output }))
  })

const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = crypto.createHash("sha256")
    fs.createReadStream(file).on("data", (d) => h.update(d)).on("error", reject).on("end", () => resolve(h.digest("hex")))
  })

/** The cache folder of the decompressed preview (`OPENCODE2_CACHE`, else the OS temp folder). */
export const previewCache = process.env.OPENCODE2_CACHE ?? path.join(os.tmpdir(), "opencode-kimi-auth-opencode2")

let preview: Promise<string> | undefined

/**
 * The preview binary, decompressed on first use (about 10-30 s; 207 MB) into
 * {@link previewCache} and reused after (a `.ok` stamp records the checked
 * sha256). Call from a `beforeAll` with {@link INSTALL_TIMEOUT_MS}.
 */
export function ensurePreview(): Promise<string> {
  preview ??= (async () => {
    const bin = path.join(previewCache, `opencode2-${PREVIEW_SHA256.slice(0, 12)}`)
    const ok = `${bin}.ok`
    if (fs.existsSync(ok) && fs.existsSync(bin)) return bin
    return withDirLock(path.join(previewCache, ".lock"), async () => {
      if (fs.existsSync(ok) && fs.existsSync(bin)) return bin
      const part = `${bin}.part-${process.pid}`
      const out = fs.openSync(part, "w", 0o755)
      const r = await exec("xz", ["-dc", previewXz], { stdout: out })
      fs.closeSync(out)
      if (r.code !== 0) {
        fs.rmSync(part, { force: true })
        throw new Error(`xz -dc ${previewXz} failed (${r.code}): ${r.output} (is xz-utils installed?)`)
      }
      const sum = await sha256(part)
      if (sum !== PREVIEW_SHA256) {
        fs.rmSync(part, { force: true })
        throw new Error(`the decompressed preview's sha256 is ${sum}, expected ${PREVIEW_SHA256}`)
      }
      fs.chmodSync(part, 0o755)
      fs.renameSync(part, bin)
      fs.writeFileSync(ok, `${PREVIEW_SHA256}\n`)
      return bin
    }, plainError)
  })()
  return preview
}

let registry: Promise<string> | undefined

/** The registry server binary (`bin/lildax`), installing `test/opencode2/fixture` with `npm ci` on first use. */
export function ensureRegistryServer(): Promise<string> {
  registry ??= (async () => {
    const bin = path.join(fixtureDir, "node_modules", "@opencode-ai", "cli-linux-x64", "bin", "lildax")
    const installed = () => {
      try {
        const v = JSON.parse(fs.readFileSync(path.join(fixtureDir, "node_modules", "@opencode-ai", "cli-linux-x64", "package.json"), "utf8")).version
        return v === REGISTRY_VERSION && fs.existsSync(bin)
      } catch {
        return false
      }
    }
    if (installed()) return bin
    return withDirLock(path.join(fixtureDir, ".install.lock"), async () => {
      if (installed()) return bin
      const npm = process.platform === "win32" ? "npm.cmd" : "npm"
      const r = await exec(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixtureDir })
      if (r.code !== 0 || !installed()) throw new Error(`npm ci in ${fixtureDir} failed (${r.code}): ${r.output}`)
      return bin
    }, plainError)
  })()
  return registry
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const s = net.createServer()
    s.on("error", reject)
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** What one `run` (or any command) printed. */
export interface V2Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

/** A running `serve`. */
export interface V2Server {
  readonly url: string
  /** Calls the HTTP API (basic auth, `x-opencode-directory`); resolves status and parsed JSON. */
  api(method: string, route: string, body?: unknown): Promise<{ status: number; json: any; text: string }>
  /** Polls `GET /api/integration/<id>` until `test` holds (plugins load on the first request); its `data`. */
  waitForIntegration(id: string, test: (data: any) => boolean, timeoutMs?: number): Promise<any>
  stop(): Promise<void>
}

/** An isolated OpenCode 2 world. */
export interface V2Env {
  readonly root: string
  readonly home: string
  readonly projectDir: string
  readonly dataDir: string
  readonly env: Readonly<Record<string, string>>
  /** `<bin> serve` on a free loopback port, up and answering. */
  serve(): Promise<V2Server>
  /** `<bin> run [--server url | --standalone] -m <model> <prompt>`. */
  run(model: string, prompt: string, options?: { server?: V2Server; timeoutMs?: number }): Promise<V2Result>
  /** The `credential` table (value parsed), read with `bun:sqlite`. */
  credentials(): Promise<Array<{ integration_id: string; value: any }>>
  /** Every byte of the SQLite files (database, WAL), to search for a secret. */
  databaseBytes(): string
  /** Host logs (for failure messages). */
  logs(): string
  dispose(): Promise<void>
}

export interface V2EnvOptions {
  readonly bin: string
  /** The plugin spec for `plugins` (an absolute path). */
  readonly plugin: string
  /** Provider settings: each provider's `baseURL`. */
  readonly apiBaseUrl: string
  readonly env?: Record<string, string>
  readonly pluginOptions?: Record<string, unknown>
}

const PASSWORD = "kimi-test"

/** Builds an isolated OpenCode 2 world in a temp folder. */
export async function makeV2Env(options: V2EnvOptions): Promise<V2Env> {
  const root = await fsp.mkdtemp(path.join(os.tmpdir(), "opencode2-env-"))
  const d = (n: string) => path.join(root, n)
  const home = d("home")
  const projectDir = d("project")
  for (const x of [home, projectDir, d("config/opencode"), d("data"), d("state"), d("cache"), d("tmp")]) fs.mkdirSync(x, { recursive: true })
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    XDG_CONFIG_HOME: d("config"),
    XDG_DATA_HOME: d("data"),
    XDG_STATE_HOME: d("state"),
    XDG_CACHE_HOME: d("cache"),
    TMPDIR: d("tmp"),
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    // The preview reads OPENCODE_PASSWORD; the registry's 1.18.18 reads $XDG_STATE_HOME/opencode/password (written below).
    OPENCODE_PASSWORD: PASSWORD,
    OPENCODE_SERVER_PASSWORD: PASSWORD,
    NO_COLOR: "1",
    OPENCODE_KIMI_AUTH_DIR: path.join(home, ".opencode-kimi-auth"),
    ...options.env
  }
  fs.mkdirSync(d("state/opencode"), { recursive: true })
  fs.writeFileSync(d("state/opencode/password"), PASSWORD, { mode: 0o600 })
  const spec = options.pluginOptions ? { package: options.plugin, options: options.pluginOptions } : options.plugin
  fs.writeFileSync(
    d("config/opencode/opencode.json"),
    JSON.stringify({
      plugins: [spec],
      providers: {
        "kimi-code-plan-cn": { settings: { baseURL: options.apiBaseUrl } },
        "kimi-code-plan-global": { settings: { baseURL: options.apiBaseUrl } }
      }
    })
  )
  const children = new Set<ChildProcess>()
  const kill = (c: ChildProcess) => {
    try {
      if (c.pid) process.kill(-c.pid, "SIGKILL")
    } catch {}
  }

  const spawnHost = (args: ReadonlyArray<string>, timeoutMs: number) =>
    new Promise<V2Result>((resolve) => {
      const child = spawn(options.bin, args, { cwd: projectDir, env, stdio: ["ignore", "pipe", "pipe"], detached: true })
      children.add(child)
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()))
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()))
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        kill(child)
      }, timeoutMs)
      child.on("close", (code) => {
        clearTimeout(timer)
        children.delete(child)
        resolve({ code, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr), timedOut })
      })
    })

  const serve = async (): Promise<V2Server> => {
    const port = await freePort()
    const started = Date.now()
    const child = spawn(options.bin, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
      cwd: projectDir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    children.add(child)
    let output = ""
    child.stdout!.on("data", (b: Buffer) => (output += b.toString()))
    child.stderr!.on("data", (b: Buffer) => (output += b.toString()))
    const url = `http://127.0.0.1:${port}`
    const auth = `Basic ${Buffer.from(`opencode:${PASSWORD}`).toString("base64")}`
    const api = async (method: string, route: string, body?: unknown) => {
      const r = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: auth, "x-opencode-directory": projectDir, ...(body !== undefined ? { "content-type": "application/json" } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000)
      })
      const text = await r.text()
      let json: any
      try {
        json = JSON.parse(text)
      } catch {}
      return { status: r.status, json, text }
    }
    const deadline = Date.now() + 60_000
    // The 2.0 preview can hang a request that arrives while it bootstraps its database (seen: 30-56 s,
    // then never answered): wait for its log line first (10 s at most), and probe with a short timeout.
    while (Date.now() < deadline && Date.now() < started + 10_000 && !/schema bootstrap completed/.test(logs())) {
      if (child.exitCode !== null) throw new Error(`serve exited (${child.exitCode}): ${output}`)
      await sleep(100)
    }
    const probe = async () => {
      const r = await fetch(`${url}/api/integration`, {
        headers: { authorization: auth, "x-opencode-directory": projectDir },
        signal: AbortSignal.timeout(5000)
      })
      await r.body?.cancel()
      return r.status === 200
    }
    for (;;) {
      if (child.exitCode !== null) throw new Error(`serve exited (${child.exitCode}): ${output}`)
      const up = await probe().catch(() => false)
      if (up) break
      if (Date.now() > deadline) throw new Error(`serve did not answer in 60 s: ${output}`)
      await sleep(200)
    }
    return {
      url,
      api,
      waitForIntegration: async (id, test, timeoutMs = 30_000) => {
        const until = Date.now() + timeoutMs
        let last: any
        for (;;) {
          last = (await api("GET", `/api/integration/${id}`)).json?.data
          if (last && test(last)) return last
          if (Date.now() > until) throw new Error(`integration ${id} never matched; last: ${JSON.stringify(last)}; logs: ${logs().slice(-3000)}`)
          await sleep(250)
        }
      },
      stop: async () => {
        const closed = new Promise<void>((r) => (child.exitCode !== null ? r() : child.on("close", () => r())))
        try {
          if (child.pid) process.kill(-child.pid, "SIGTERM")
        } catch {}
        const t = setTimeout(() => kill(child), 5000)
        await closed
        clearTimeout(t)
        children.delete(child)
      }
    }
  }

  const dbFiles = () => {
    const dir = path.join(d("data"), "opencode")
    return fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^opencode.*\.db(-wal)?$/.test(f)).map((f) => path.join(dir, f)) : []
  }
  const logs = () => {
    const dir = path.join(d("data"), "opencode", "log")
    return fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n") : ""
  }

  return {
    root,
    home,
    projectDir,
    dataDir: path.join(d("data"), "opencode"),
    env,
    serve,
    run: (model, prompt, o = {}) =>
      spawnHost(["run", ...(o.server ? ["--server", o.server.url] : ["--standalone"]), "-m", model, prompt], o.timeoutMs ?? 90_000),
    credentials: async () => {
      const db = dbFiles().find((f) => f.endsWith(".db"))
      if (db === undefined) return []
      const bun = (await ensureOpencode()).path
      const script = `import { Database } from "bun:sqlite"; const db = new Database(${JSON.stringify(db)}, { readonly: true });` +
        `console.log(JSON.stringify(db.query("select integration_id, value from credential").all()))`
      const r = await new Promise<V2Result>((resolve) => {
        const child = spawn(bun, ["-e", script], { env: { ...process.env, BUN_BE_BUN: "1" }, stdio: ["ignore", "pipe", "pipe"] })
        let stdout = ""
        let stderr = ""
        child.stdout.on("data", (b: Buffer) => (stdout += b.toString()))
        child.stderr.on("data", (b: Buffer) => (stderr += b.toString()))
        child.on("close", (code) => resolve({ code, stdout, stderr, timedOut: false }))
      })
      if (r.code !== 0) throw new Error(`reading ${db} failed: ${r.stderr}`)
      return (JSON.parse(r.stdout.trim().split("\n").pop() ?? "[]") as Array<{ integration_id: string; value: string }>)
        .map((x) => ({ integration_id: x.integration_id, value: JSON.parse(x.value) }))
    },
    databaseBytes: () => dbFiles().map((f) => fs.readFileSync(f).toString("latin1")).join("\n"),
    logs,
    dispose: async () => {
      for (const c of children) kill(c)
      children.clear()
      if (!/^(1|true)$/.test(process.env.KEEP_OPENCODE_TMP ?? "")) await fsp.rm(root, { recursive: true, force: true })
    }
  }
}
