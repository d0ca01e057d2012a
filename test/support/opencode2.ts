/**
 * Test harness for the real OpenCode 2 host, OpenCode 2.1.2
 * (test/opencode/NOTES.md, "OpenCode 2.1"): `@opencode/cli-linux-x64@2.1.2`
 * from the registry, pinned in `test/opencode2/fixture` with its own lock and
 * installed there with `npm ci` on first use, under the folder lock every host
 * install shares (like the 1.18.33 fixture). `OPENCODE2_BIN` points at another
 * copy of the same binary instead.
 *
 * {@link makeV2Env} builds an isolated world (HOME, XDG_*, an `opencode.json`
 * with `plugins` and both Kimi providers pointed at the emulator) and drives
 * the host's CLI, always `--standalone` (a private server per command: 2.1's
 * background service takes one fixed port per machine): `auth login|list|
 * switch|logout|export|import`, `run`, `plugin add`, a `serve` on a free
 * loopback port with its `/api/event` stream (what the TUI reads), and the credential
 * table of its SQLite database (read with `bun:sqlite` through the host
 * acting as Bun). Each world has its own data folder: OpenCode 1.18.33
 * refuses a database 2.1.2 has written.
 *
 * `SKIP_OPENCODE=1` (every host) or `SKIP_OPENCODE2=1` (this one) skips the suites.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, afterEach, beforeAll } from "vitest"
import { type EmulatorOptions, type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { INSTALL_TIMEOUT_MS, repoRoot, stripAnsi, withDirLock } from "./opencode.js"

export { INSTALL_TIMEOUT_MS }

/** The OpenCode 2 release the suites run, pinned in `test/opencode2/fixture`. */
export const OPENCODE2_VERSION = "2.1.2"

export const fixtureDir = path.join(repoRoot, "test", "opencode2", "fixture")

/** Why the OpenCode 2.1 suites cannot run here, or `undefined` when they can. */
export const opencode2Missing = (): string | undefined => {
  if (/^(1|true|yes)$/i.test(process.env.SKIP_OPENCODE ?? "")) return "SKIP_OPENCODE is set"
  if (/^(1|true|yes)$/i.test(process.env.SKIP_OPENCODE2 ?? "")) return "SKIP_OPENCODE2 is set"
  if (process.platform !== "linux" || process.arch !== "x64") return `@opencode/cli-linux-x64 is linux-x64 only (this is ${process.platform}-${process.arch})`
  return undefined
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** The V2 harness's lock timeouts are plain errors (not the V1 harness's OpencodeUnavailableError). */
const plainError = (message: string) => new Error(message)

const exec = (cmd: string, args: ReadonlyArray<string>, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout?.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr?.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", (e) => resolve({ code: -1, output: output + String(e) }))
    child.on("close", (code) => resolve({ code, output }))
  })

let installed: Promise<string> | undefined

/**
 * The 2.1.2 binary: `OPENCODE2_BIN`, else the fixture's, installing it with
 * `npm ci` on first use (99 MB from the registry; ~5 s from a warm npm cache).
 * Call from a `beforeAll` with {@link INSTALL_TIMEOUT_MS}.
 */
export function ensureOpencode2(): Promise<string> {
  installed ??= (async () => {
    const fromEnv = process.env.OPENCODE2_BIN
    if (fromEnv) {
      if (!fs.existsSync(fromEnv)) throw new Error(`OPENCODE2_BIN=${fromEnv} does not exist`)
      return fromEnv
    }
    const pkg = path.join(fixtureDir, "node_modules", "@opencode", "cli-linux-x64")
    const bin = path.join(pkg, "bin", "opencode")
    const ready = () => {
      try {
        return JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version === OPENCODE2_VERSION && fs.existsSync(bin)
      } catch {
        return false
      }
    }
    if (ready()) return bin
    return withDirLock(path.join(fixtureDir, ".install.lock"), async () => {
      if (ready()) return bin
      const npm = process.platform === "win32" ? "npm.cmd" : "npm"
      const r = await exec(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: fixtureDir })
      if (r.code !== 0 || !ready()) {
        throw new Error(`npm ci in ${fixtureDir} failed (${r.code}): ${r.output}\nOr point OPENCODE2_BIN at an opencode ${OPENCODE2_VERSION} binary, or set SKIP_OPENCODE2=1.`)
      }
      return bin
    }, plainError)
  })()
  installed.catch(() => (installed = undefined))
  return installed
}

/** What one command printed. */
export interface V2Result {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
  readonly timedOut: boolean
}

/** One credential row as the host stores it. */
export interface V2Row {
  readonly id: string
  readonly integration_id: string
  readonly label: string
  readonly active: boolean
  readonly value: any
}

/** An isolated OpenCode 2.1 world. */
export interface V2Env {
  readonly root: string
  readonly home: string
  readonly projectDir: string
  readonly configFile: string
  readonly dataDir: string
  readonly env: Readonly<Record<string, string>>
  /** `<bin> <args>` in the project folder (add `--standalone` yourself where the command takes it). */
  cli(args: ReadonlyArray<string>, options?: { timeoutMs?: number; env?: Record<string, string> }): Promise<V2Result>
  /** `auth login <provider> --method kimi-device --standalone`, stdin closed (the emulator approves). */
  login(provider: string, options?: { timeoutMs?: number }): Promise<V2Result>
  /** `run --standalone -m <model> <prompt>`. */
  run(model: string, prompt: string, options?: { timeoutMs?: number; env?: Record<string, string> }): Promise<V2Result>
  /** The `credential` table (value parsed), read with `bun:sqlite`. */
  credentials(): Promise<Array<V2Row>>
  /** Every byte of the SQLite files (database, WAL), to search for a secret. */
  databaseBytes(): string
  /** Host logs (for failure messages). */
  logs(): string
  /** `serve` on a free loopback port (password-protected), its event stream read from the start; killed with the world. */
  serve(): Promise<V2Server>
  dispose(): Promise<void>
}

/** A running `opencode serve` of one world. */
export interface V2Server {
  /** `http://127.0.0.1:<port>`, for `run --server`. */
  readonly url: string
  /** The environment a client of this server needs (its password). */
  readonly clientEnv: Record<string, string>
  /** Every event of `/api/event` so far, with when it was read (ms, `performance.now()`). */
  readonly events: () => ReadonlyArray<{ readonly at: number; readonly event: { readonly type?: string; readonly data?: any } }>
}

export interface V2EnvOptions {
  readonly bin: string
  /** The plugin spec for `plugins` (a folder); omit for none. */
  readonly plugin?: string | undefined
  /** Provider settings: each provider's `baseURL`. */
  readonly apiBaseUrl: string
  readonly env?: Record<string, string>
  readonly pluginOptions?: Record<string, unknown>
}

/** Builds an isolated OpenCode 2.1 world in a temp folder. */
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
    NO_COLOR: "1",
    OPENCODE_KIMI_AUTH_DIR: path.join(home, ".opencode-kimi-auth"),
    ...options.env
  }
  const configFile = d("config/opencode/opencode.json")
  const spec = options.plugin === undefined ? undefined : options.pluginOptions ? { package: options.plugin, options: options.pluginOptions } : options.plugin
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      ...(spec !== undefined ? { plugins: [spec] } : {}),
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

  const cli = (args: ReadonlyArray<string>, o: { timeoutMs?: number; env?: Record<string, string> } = {}) =>
    new Promise<V2Result>((resolve) => {
      const child = spawn(options.bin, args, { cwd: projectDir, env: { ...env, ...o.env }, stdio: ["ignore", "pipe", "pipe"], detached: true })
      children.add(child)
      let stdout = ""
      let stderr = ""
      child.stdout!.on("data", (b: Buffer) => (stdout += b.toString()))
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()))
      let timedOut = false
      const timer = setTimeout(() => {
        timedOut = true
        kill(child)
      }, o.timeoutMs ?? 90_000)
      child.on("close", (code) => {
        clearTimeout(timer)
        children.delete(child)
        resolve({ code, stdout: stripAnsi(stdout), stderr: stripAnsi(stderr), timedOut })
      })
    })

  const dbFile = () => path.join(d("data"), "opencode", "opencode.db")
  const logs = () => {
    const dir = path.join(d("data"), "opencode", "log")
    return fs.existsSync(dir) ? fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), "utf8")).join("\n") : ""
  }

  const credentials = async (): Promise<Array<V2Row>> => {
    if (!fs.existsSync(dbFile())) return []
    const script = `import { Database } from "bun:sqlite"; const db = new Database(${JSON.stringify(dbFile())}, { readonly: true });` +
      `console.log(JSON.stringify(db.query("select * from credential").all()))`
    const r = await exec(options.bin, ["-e", script], { env: { ...process.env, BUN_BE_BUN: "1" } })
    if (r.code !== 0) throw new Error(`reading ${dbFile()} failed: ${r.output}`)
    const rows = JSON.parse(r.output.trim().split("\n").pop() ?? "[]") as Array<Record<string, any>>
    return rows.map((x) => ({
      id: String(x["id"]),
      integration_id: String(x["integration_id"]),
      label: String(x["label"] ?? ""),
      active: x["active"] === 1 || x["active"] === true,
      value: typeof x["value"] === "string" ? JSON.parse(x["value"]) : x["value"]
    }))
  }

  const serve = async (): Promise<V2Server> => {
    const password = "test-password"
    const child = spawn(options.bin, ["serve", "--hostname", "127.0.0.1", "--port", "0"], {
      cwd: projectDir,
      env: { ...env, OPENCODE_PASSWORD: password },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true
    })
    children.add(child)
    let out = ""
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve printed no address in 60 s: ${out}`)), 60_000)
      const read = (b: Buffer) => {
        out += b.toString()
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)
        if (m) {
          clearTimeout(timer)
          resolve(m[1]!)
        }
      }
      child.stdout!.on("data", read)
      child.stderr!.on("data", read)
      child.on("close", (code) => reject(new Error(`serve ended (${code}): ${out}`)))
    })
    const headers = { authorization: `Basic ${Buffer.from(`opencode:${password}`).toString("base64")}` }
    const res = await fetch(`${url}/api/event`, { headers })
    if (!res.ok || res.body === null) throw new Error(`GET ${url}/api/event: ${res.status}`)
    const events: Array<{ at: number; event: any }> = []
    void (async () => {
      const decoder = new TextDecoder()
      let pending = ""
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        const at = performance.now()
        pending += decoder.decode(chunk, { stream: true })
        const lines = pending.split("\n")
        pending = lines.pop() ?? ""
        for (const line of lines) {
          if (!line.startsWith("data: ")) continue
          try {
            events.push({ at, event: JSON.parse(line.slice(6)) })
          } catch {}
        }
      }
    })().catch(() => {})
    return { url, clientEnv: { OPENCODE_PASSWORD: password }, events: () => [...events] }
  }

  return {
    root,
    home,
    projectDir,
    configFile,
    dataDir: path.join(d("data"), "opencode"),
    env,
    cli,
    login: (provider, o = {}) => cli(["auth", "login", provider, "--method", "kimi-device", "--standalone"], { timeoutMs: o.timeoutMs ?? 90_000 }),
    run: (model, prompt, o = {}) => cli(["run", "--standalone", "-m", model, prompt], o),
    credentials,
    databaseBytes: () => {
      const dir = path.join(d("data"), "opencode")
      return fs.existsSync(dir)
        ? fs.readdirSync(dir).filter((f) => /^opencode.*\.db(-wal)?$/.test(f)).map((f) => fs.readFileSync(path.join(dir, f)).toString("latin1")).join("\n")
        : ""
    },
    logs,
    serve,
    dispose: async () => {
      for (const c of children) kill(c)
      children.clear()
      await sleep(50)
      if (!/^(1|true)$/.test(process.env.KEEP_OPENCODE_TMP ?? "")) await fsp.rm(root, { recursive: true, force: true })
    }
  }
}

/**
 * The usual suite around OpenCode 2.1 worlds: `prepare` (installs, checks) and the Kimi emulator
 * before all tests, every world made by a test disposed after it, the emulator closed at the end.
 * Read `emulator` inside tests (it is set once `beforeAll` ran).
 */
export const withEmulatorSuite = (
  prepare: () => Promise<void>,
  envs: Array<{ dispose(): Promise<void> }>,
  options: EmulatorOptions = { interval: 1, autoApproveAfterMillis: 500 }
): { readonly emulator: StartedEmulator } => {
  const state = {} as { emulator: StartedEmulator }
  beforeAll(async () => {
    await prepare()
    state.emulator = await start(options)
  }, INSTALL_TIMEOUT_MS)
  afterEach(async () => {
    while (envs.length) await envs.pop()?.dispose()
  })
  afterAll(async () => {
    await state.emulator?.close()
  })
  return state
}

/** The Kimi providers of OpenCode 2.1, and what the emulator answers. */
export const KIMI_CN = "kimi-code-plan-cn"
export const KIMI_GLOBAL = "kimi-code-plan-global"
export const EMULATOR_GREETING = "Hello from the Kimi emulator"

/**
 * The plugin folder the 2.1 suites list: README's, the checkout's `plugin/` folder, or `KIMI_TEST_V2_PLUGIN`
 * (another build's folder, to show a test fails there).
 */
export const v21Plugin = (): string => process.env.KIMI_TEST_V2_PLUGIN ?? path.join(repoRoot, "plugin")

/** Why a 2.1 suite is skipped (warned once), or `undefined` when it runs. */
export const v21SuiteMissing = (suite: string): string | undefined => {
  const missing = opencode2Missing()
  if (missing !== undefined) console.warn(`skipping the OpenCode 2.1 ${suite}: ${missing}`)
  return missing
}

/** An OpenCode 2.1 world listing {@link v21Plugin}, pointed at `emulator`, disposed with `envs` after the test. */
export const v21World = async (
  bin: string,
  emulator: StartedEmulator,
  envs: Array<{ dispose(): Promise<void> }>,
  env: Record<string, string> = {}
): Promise<V2Env> => {
  const e = await makeV2Env({
    bin,
    plugin: v21Plugin(),
    apiBaseUrl: emulator.apiBaseUrl,
    env: { KIMI_OAUTH_HOST: emulator.oauthHost, KIMI_CODE_BASE_URL: emulator.apiBaseUrl, ...env }
  })
  envs.push(e)
  return e
}

/** One 2.1 suite's state: the host binary, the emulator, and the worlds to dispose (see {@link withEmulatorSuite}). */
export const v21Suite = (options?: EmulatorOptions) => {
  const envs: Array<{ dispose(): Promise<void> }> = []
  let bin = ""
  const suite = withEmulatorSuite(async () => {
    if (!fs.existsSync(path.join(repoRoot, "dist", "bundle", "server-v2.js"))) throw new Error("run `npm run build` first")
    bin = await ensureOpencode2()
  }, envs, options)
  return {
    envs,
    get bin() {
      return bin
    },
    get emulator() {
      return suite.emulator
    },
    /** A world of this suite (disposed after the test). */
    world: (env: Record<string, string> = {}) => v21World(bin, suite.emulator, envs, env)
  }
}
