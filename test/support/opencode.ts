/**
 * Test harness for the real `opencode` binary (npm `opencode-ai`, pinned to
 * {@link OPENCODE_VERSION}).
 *
 * - {@link ensureOpencode} finds the binary (env `OPENCODE_BIN`, then the root
 *   `node_modules`, then the fixture `test/opencode/fixture`) and, if none is
 *   there, installs the fixture once with `npm ci` (locked across vitest
 *   workers, idempotent, with a clear error when it fails).
 * - {@link makeOpencodeEnv} builds an isolated world in a temp folder (HOME,
 *   XDG_*, TMPDIR, a pre-seeded config folder, an `opencode.json` that loads
 *   the plugin) and runs `opencode` subcommands in it as child processes.
 * - {@link startFakeChatServer} is a loopback OpenAI-compatible chat server
 *   that records every request.
 *
 * Facts behind the choices (measured against 1.18.33) are in
 * `test/opencode/NOTES.md`. Set `SKIP_OPENCODE=1` to skip the suites that use it
 * ({@link skipOpencode}); set `KEEP_OPENCODE_TMP=1` to keep the temp folders.
 */
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

/** The OpenCode release the plugin is tested against. */
export const OPENCODE_VERSION = "1.18.33"

/** The repository root (this file is `test/support/opencode.ts`). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** The fixture package that pins `opencode-ai` with its own lock file. */
export const fixtureDir = path.join(repoRoot, "test", "opencode", "fixture")

/** True when `SKIP_OPENCODE=1` (or `true`): suites using the binary should skip. */
export const skipOpencode = /^(1|true|yes)$/i.test(process.env.SKIP_OPENCODE ?? "")

/** A time budget for the one-off fixture install (hooks that call {@link ensureOpencode}). */
export const INSTALL_TIMEOUT_MS = 10 * 60_000

// ---------------------------------------------------------------------------
// Locating / installing the binary
// ---------------------------------------------------------------------------

/** Where the binary came from. */
export type OpencodeSource = "env" | "root" | "fixture"

/** A located `opencode` binary. */
export interface OpencodeBinary {
  readonly path: string
  readonly version: string
  readonly source: OpencodeSource
}

/** Raised when the binary cannot be found or installed; the message says what to do. */
export class OpencodeUnavailableError extends Error {
  override readonly name = "OpencodeUnavailableError"
}

function hasAvx2(): boolean {
  try {
    return /(^|\s)avx2(\s|$)/i.test(fs.readFileSync("/proc/cpuinfo", "utf8"))
  } catch {
    return false
  }
}

function isMusl(): boolean {
  if (process.platform !== "linux") return false
  if (fs.existsSync("/etc/alpine-release")) return true
  const r = spawnSync("ldd", ["--version"], { encoding: "utf8" })
  return `${r.stdout ?? ""}${r.stderr ?? ""}`.toLowerCase().includes("musl")
}

/** Platform package names in the order opencode-ai's own postinstall tries them. */
function platformPackages(): Array<string> {
  const platform = process.platform === "win32" ? "windows" : process.platform
  const base = `opencode-${platform}-${process.arch}`
  if (process.arch !== "x64") return isMusl() ? [`${base}-musl`, base] : [base, `${base}-musl`]
  const plain = [base, `${base}-baseline`]
  const musl = [`${base}-musl`, `${base}-baseline-musl`]
  const order = isMusl() ? [...musl, ...plain] : [...plain, ...musl]
  return hasAvx2() ? order : [...order.filter((n) => n.includes("baseline")), ...order.filter((n) => !n.includes("baseline"))]
}

function readVersion(pkgJson: string): string | undefined {
  try {
    const v = (JSON.parse(fs.readFileSync(pkgJson, "utf8")) as { version?: unknown }).version
    return typeof v === "string" ? v : undefined
  } catch {
    return undefined
  }
}

/**
 * The binary inside a `node_modules` folder, if `opencode-ai` at the pinned
 * version is there. Prefers the platform package's own binary, so an install
 * made with `--ignore-scripts` (where `opencode-ai/bin/opencode.exe` is only a
 * shell stub that prints an error) works too.
 */
function binaryIn(nodeModules: string): string | undefined {
  if (readVersion(path.join(nodeModules, "opencode-ai", "package.json")) !== OPENCODE_VERSION) return undefined
  const exe = process.platform === "win32" ? "opencode.exe" : "opencode"
  for (const name of platformPackages()) {
    const dir = path.join(nodeModules, name)
    const bin = path.join(dir, "bin", exe)
    if (readVersion(path.join(dir, "package.json")) === OPENCODE_VERSION && fs.existsSync(bin)) return bin
  }
  const linked = path.join(nodeModules, "opencode-ai", "bin", "opencode.exe")
  try {
    if (fs.statSync(linked).size > 1_000_000) return linked
  } catch {}
  return undefined
}

function locate(): OpencodeBinary | undefined {
  const fromEnv = process.env.OPENCODE_BIN
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) throw new OpencodeUnavailableError(`OPENCODE_BIN=${fromEnv} does not exist`)
    return { path: fromEnv, version: OPENCODE_VERSION, source: "env" }
  }
  const root = binaryIn(path.join(repoRoot, "node_modules"))
  if (root) return { path: root, version: OPENCODE_VERSION, source: "root" }
  const fixture = binaryIn(path.join(fixtureDir, "node_modules"))
  if (fixture) return { path: fixture, version: OPENCODE_VERSION, source: "fixture" }
  return undefined
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Runs `body` holding the folder lock `lock` (mkdir is atomic: the winner does the work, the others wait,
 * across vitest workers). A lock whose holder is gone, or older than INSTALL_TIMEOUT_MS, is taken over;
 * waiting longer than that throws `timedOut`'s error. Used by every host install (OpenCode 1 and 2).
 */
export async function withDirLock<A>(
  lock: string,
  body: () => Promise<A>,
  timedOut: (message: string) => Error = (message) => new OpencodeUnavailableError(message)
): Promise<A> {
  const deadline = Date.now() + INSTALL_TIMEOUT_MS
  fs.mkdirSync(path.dirname(lock), { recursive: true })
  for (;;) {
    try {
      fs.mkdirSync(lock)
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid))
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e
      let stale = false
      try {
        const pid = Number(fs.readFileSync(path.join(lock, "pid"), "utf8"))
        if (pid > 0) process.kill(pid, 0)
      } catch (err) {
        stale = (err as NodeJS.ErrnoException).code === "ESRCH"
      }
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > INSTALL_TIMEOUT_MS) stale = true
      } catch {}
      if (stale) fs.rmSync(lock, { recursive: true, force: true })
      else if (Date.now() > deadline) throw timedOut(`timed out waiting for ${lock}`)
      else await sleep(250)
    }
  }
  try {
    return await body()
  } finally {
    fs.rmSync(lock, { recursive: true, force: true })
  }
}

function npmInstallFixture(): Promise<{ code: number | null; output: string; ms: number }> {
  const npm = process.platform === "win32" ? "npm.cmd" : "npm"
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: fixtureDir,
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"],
      shell: process.platform === "win32"
    })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", (e) => resolve({ code: -1, output: output + String(e), ms: Date.now() - started }))
    child.on("close", (code) => resolve({ code, output, ms: Date.now() - started }))
  })
}

let located: Promise<OpencodeBinary> | undefined

/**
 * Finds the pinned `opencode` binary, installing the fixture package
 * (`npm ci` in `test/opencode/fixture`, about 370 MB, ~5 s from a warm npm
 * cache, a minute or more from a cold one) when neither `OPENCODE_BIN`, the root
 * `node_modules` nor the fixture has it. Memoised per process; call it from a
 * `beforeAll` with a timeout of {@link INSTALL_TIMEOUT_MS}.
 */
export function ensureOpencode(): Promise<OpencodeBinary> {
  located ??= (async () => {
    const found = locate()
    if (found) return found
    return withDirLock(path.join(fixtureDir, ".install.lock"), async () => {
      const again = locate() // another worker may have installed it meanwhile
      if (again) return again
      const result = await npmInstallFixture()
      const after = locate()
      if (result.code === 0 && after) return after
      throw new OpencodeUnavailableError(
        [
          `Could not install opencode-ai@${OPENCODE_VERSION} for the OpenCode tests ` +
            `(npm ci in ${path.relative(repoRoot, fixtureDir)} exited ${result.code}).`,
          `Run it by hand to see why: npm ci --prefix ${path.relative(repoRoot, fixtureDir)}`,
          "Or point OPENCODE_BIN at an opencode 1.18.33 binary, or set SKIP_OPENCODE=1 to skip these tests.",
          result.output
            .trim()
            .split("\n")
            .filter((l) => !/^npm error\s+at /.test(l))
            .slice(-12)
            .join("\n")
        ].join("\n")
      )
    })
  })()
  located.catch(() => (located = undefined))
  return located
}

// ---------------------------------------------------------------------------
// Isolated environment
// ---------------------------------------------------------------------------

/** An OAuth entry as OpenCode 1.18.33 keeps it in `auth.json` (other fields are dropped on read). */
export interface OauthAuthEntry {
  readonly type: "oauth"
  readonly refresh: string
  readonly access: string
  /** Epoch milliseconds. */
  readonly expires: number
  readonly accountId?: string
  readonly enterpriseUrl?: string
}

/** Any `auth.json` entry. */
export type AuthEntry = OauthAuthEntry | { readonly type: "api"; readonly key: string } | Record<string, unknown>

/** Options of {@link makeOpencodeEnv}. */
export interface OpencodeEnvOptions {
  /** The plugin module: an absolute path or a `file://` URL. Omit for no plugin. */
  readonly plugin?: string | URL
  /** Plugin options: the config then says `plugin: [[spec, options]]`; they reach the plugin's second argument. */
  readonly pluginOptions?: Record<string, unknown>
  /** Extra `opencode.json` keys, merged over `{ plugin }` (e.g. a `provider` block). */
  readonly config?: Record<string, unknown>
  /** Extra environment for every run (a value of `undefined` removes a default). */
  readonly env?: Record<string, string | undefined>
  /** `auth.json` to write before the first run. */
  readonly auth?: Record<string, AuthEntry>
  /**
   * Pre-seed the config folder so OpenCode skips installing `@opencode-ai/plugin`
   * from npm on start (7-15 s online; ~75 s and a silent failure offline). Default true.
   */
  readonly seedConfigDeps?: boolean
  /** Parent folder of the temp root (default `os.tmpdir()`). */
  readonly tmpDir?: string
  /**
   * The model catalog: `"empty"` (default; only config providers exist, each start
   * ~1.5 s faster) or `"bundled"`, the models.dev snapshot inside the binary that
   * every user gets (with `kimi-code-plan-cn` and `kimi-code-plan-global`).
   */
  readonly catalog?: "empty" | "bundled"
}

/** Options of one run. */
export interface RunOptions {
  /** Kill the process group after this long (default 60 s). */
  readonly timeoutMs?: number
  /** Extra environment for this run only. */
  readonly env?: Record<string, string | undefined>
  /** Text for stdin; default is no stdin at all (like `</dev/null`). */
  readonly input?: string
  /** Working directory (default: the env's project folder). */
  readonly cwd?: string
}

/** What a run produced. `stdout`/`stderr` have ANSI escapes removed; `raw*` keep them. */
export interface OpencodeResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly rawStdout: string
  readonly rawStderr: string
  readonly timedOut: boolean
  readonly durationMs: number
  readonly args: ReadonlyArray<string>
}

/** An isolated OpenCode world in a temp folder. */
export interface OpencodeEnv {
  readonly binary: OpencodeBinary
  readonly root: string
  readonly home: string
  readonly dataDir: string
  readonly configDir: string
  readonly cacheDir: string
  readonly stateDir: string
  readonly projectDir: string
  /** `$XDG_DATA_HOME/opencode/auth.json`. */
  readonly authFile: string
  /** `$XDG_CONFIG_HOME/opencode/opencode.json`. */
  readonly configFile: string
  /** The environment every run gets (before per-run `env`). */
  readonly env: Readonly<Record<string, string>>
  /** Runs `opencode <args>` in the project folder. Never rejects on a non-zero exit. */
  run(args: ReadonlyArray<string>, options?: RunOptions): Promise<OpencodeResult>
  /** `opencode auth login -p <provider> -m <method>` with no stdin. */
  login(provider: string, method: string, options?: RunOptions): Promise<OpencodeResult>
  /** `opencode run -m <model> <prompt>` with no stdin. */
  prompt(model: string, prompt: string, options?: RunOptions & { readonly format?: "default" | "json" }): Promise<OpencodeResult>
  /** The parsed `auth.json`, or undefined when it does not exist. */
  readAuth(): Promise<Record<string, unknown> | undefined>
  /** Writes `auth.json` (mode 0600), replacing it. */
  writeAuth(entries: Record<string, AuthEntry>): Promise<void>
  /** Rewrites `opencode.json` (the plugin entry is kept unless `config.plugin` is given). */
  writeConfig(config: Record<string, unknown>): Promise<void>
  /** OpenCode's own log files, concatenated (handy in a failure message). */
  readLogs(): Promise<string>
  /** Removes the temp folder (kept when `KEEP_OPENCODE_TMP=1`). */
  dispose(): Promise<void>
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g

/** Removes ANSI escape sequences. */
export const stripAnsi = (text: string): string => text.replace(ANSI, "")

/** A port nothing listens on: OpenCode's models.dev fetch fails at once, on loopback. */
const DEAD_URL = "http://127.0.0.1:9"

/** Environment variables copied from the test process; everything else is left out on purpose. */
const PASSTHROUGH = ["PATH", "LANG", "LC_ALL", "SystemRoot", "ComSpec", "PATHEXT"]

function writeSeed(configDir: string): void {
  // OpenCode 1.18.33 runs `npm install` (Arborist) in its config folder at start
  // unless node_modules exists and every dependency of package.json is in the
  // root entry of package-lock.json. These three files satisfy that check, so no
  // network is needed. Plugins that import @opencode-ai/plugin at run time would
  // need the real package (ours bundles what it needs).
  const deps = { "@opencode-ai/plugin": OPENCODE_VERSION }
  fs.mkdirSync(path.join(configDir, "node_modules"), { recursive: true })
  fs.writeFileSync(path.join(configDir, "package.json"), JSON.stringify({ dependencies: deps }, null, 2) + "\n")
  fs.writeFileSync(
    path.join(configDir, "package-lock.json"),
    JSON.stringify({ name: "opencode", lockfileVersion: 3, requires: true, packages: { "": { dependencies: deps } } }, null, 2) + "\n"
  )
}

function pluginSpec(plugin: string | URL): string {
  if (plugin instanceof URL) return plugin.href
  if (plugin.startsWith("file:")) return plugin
  return pathToFileURL(path.resolve(plugin)).href
}

function mergeEnv(base: Record<string, string>, extra: Record<string, string | undefined> | undefined): Record<string, string> {
  const out = { ...base }
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete out[k]
    else out[k] = v
  }
  return out
}

function spawnOpencode(binary: string, args: ReadonlyArray<string>, env: Record<string, string>, cwd: string, options: RunOptions): Promise<OpencodeResult> {
  const timeoutMs = options.timeoutMs ?? 60_000
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [...args], {
      cwd,
      env,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: process.platform !== "win32" // own process group, so a timeout kills its children too
    })
    let rawStdout = ""
    let rawStderr = ""
    let timedOut = false
    child.stdout?.on("data", (d: Buffer) => (rawStdout += d.toString()))
    child.stderr?.on("data", (d: Buffer) => (rawStderr += d.toString()))
    if (options.input !== undefined) child.stdin?.end(options.input)
    const kill = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined && process.platform !== "win32") process.kill(-child.pid, signal)
        else child.kill(signal)
      } catch {}
    }
    let hard: NodeJS.Timeout | undefined
    const timer = setTimeout(() => {
      timedOut = true
      kill("SIGTERM")
      hard = setTimeout(() => kill("SIGKILL"), 3_000)
    }, timeoutMs)
    child.on("error", (e) => {
      clearTimeout(timer)
      reject(e)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (hard) clearTimeout(hard)
      resolve({
        code,
        signal,
        stdout: stripAnsi(rawStdout),
        stderr: stripAnsi(rawStderr),
        rawStdout,
        rawStderr,
        timedOut,
        durationMs: Date.now() - started,
        args
      })
    })
  })
}

/**
 * Builds an isolated OpenCode environment: a temp root holding `home`, `data`,
 * `config`, `cache`, `state`, `tmp` and `project`; HOME, XDG_DATA_HOME,
 * XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_STATE_HOME and TMPDIR point there;
 * `OPENCODE_DISABLE_MODELS_FETCH`, `OPENCODE_DISABLE_AUTOUPDATE` and
 * `OPENCODE_DISABLE_DEFAULT_PLUGINS` are set, `OPENCODE_MODELS_URL` points at a
 * dead loopback port, `OPENCODE_MODELS_PATH` at an empty catalog (pass
 * `env: { OPENCODE_MODELS_PATH: undefined }` for the bundled one) and
 * `OPENCODE_TEST_MANAGED_CONFIG_DIR` at an empty folder (`catalog: "bundled"` keeps
 * the binary's own catalog instead of the empty one), so nothing leaves the
 * machine and no machine-wide config leaks in. Only PATH and the locale are
 * inherited from the test process.
 *
 * `opencode.json` holds `{ plugin: [spec] }` (or `[[spec, options]]`) plus
 * `options.config`, and no provider block unless given.
 */
export async function makeOpencodeEnv(options: OpencodeEnvOptions = {}): Promise<OpencodeEnv> {
  const binary = await ensureOpencode()
  const root = await fsp.mkdtemp(path.join(options.tmpDir ?? os.tmpdir(), "opencode-env-"))
  const dir = (name: string) => path.join(root, name)
  const home = dir("home")
  const data = dir("data")
  const config = dir("config")
  const cache = dir("cache")
  const state = dir("state")
  const tmp = dir("tmp")
  const projectDir = dir("project")
  for (const d of [home, data, config, cache, state, tmp, projectDir]) fs.mkdirSync(d, { recursive: true })
  const configDir = path.join(config, "opencode")
  const dataDir = path.join(data, "opencode")
  fs.mkdirSync(configDir, { recursive: true })
  fs.mkdirSync(dataDir, { recursive: true })
  if (options.seedConfigDeps !== false) writeSeed(configDir)
  fs.writeFileSync(path.join(root, "models.json"), "{}\n")

  const inherited: Record<string, string> = {}
  for (const k of PASSTHROUGH) {
    const v = process.env[k]
    if (v !== undefined) inherited[k] = v
  }
  const env = mergeEnv(
    {
      ...inherited,
      HOME: home,
      USERPROFILE: home,
      XDG_DATA_HOME: data,
      XDG_CONFIG_HOME: config,
      XDG_CACHE_HOME: cache,
      XDG_STATE_HOME: state,
      TMPDIR: tmp,
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
      OPENCODE_MODELS_URL: DEAD_URL,
      // An empty model catalog instead of the bundled models.dev snapshot: only
      // providers from the config exist, and each start is ~1.5 s faster.
      ...(options.catalog === "bundled" ? {} : { OPENCODE_MODELS_PATH: path.join(root, "models.json") }),
      OPENCODE_TEST_MANAGED_CONFIG_DIR: dir("managed-config"),
      NO_COLOR: "1"
    },
    options.env
  )

  const configFile = path.join(configDir, "opencode.json")
  const authFile = path.join(dataDir, "auth.json")
  const pluginEntry =
    options.plugin === undefined
      ? undefined
      : options.pluginOptions === undefined
        ? pluginSpec(options.plugin)
        : [pluginSpec(options.plugin), options.pluginOptions]

  const writeConfig = async (extra: Record<string, unknown>) => {
    const body = { ...(pluginEntry === undefined ? {} : { plugin: [pluginEntry] }), ...extra }
    await fsp.writeFile(configFile, JSON.stringify(body, null, 2) + "\n")
  }
  const writeAuth = async (entries: Record<string, AuthEntry>) => {
    await fsp.writeFile(authFile, JSON.stringify(entries, null, 2) + "\n", { mode: 0o600 })
    await fsp.chmod(authFile, 0o600)
  }
  await writeConfig(options.config ?? {})
  if (options.auth) await writeAuth(options.auth)

  const run = (args: ReadonlyArray<string>, runOptions: RunOptions = {}) =>
    spawnOpencode(binary.path, args, mergeEnv(env, runOptions.env), runOptions.cwd ?? projectDir, runOptions)

  return {
    binary,
    root,
    home,
    dataDir,
    configDir,
    cacheDir: path.join(cache, "opencode"),
    stateDir: path.join(state, "opencode"),
    projectDir,
    authFile,
    configFile,
    env,
    run,
    login: (provider, method, runOptions) => run(["auth", "login", "-p", provider, "-m", method], runOptions),
    prompt: (model, prompt, runOptions = {}) =>
      run(["run", "-m", model, ...(runOptions.format === "json" ? ["--format", "json"] : []), prompt], runOptions),
    readAuth: async () => {
      try {
        return JSON.parse(await fsp.readFile(authFile, "utf8")) as Record<string, unknown>
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
        throw e
      }
    },
    writeAuth,
    writeConfig,
    readLogs: async () => {
      const logDir = path.join(dataDir, "log")
      const files = (await fsp.readdir(logDir).catch(() => [] as Array<string>)).sort()
      const parts = await Promise.all(files.map((f) => fsp.readFile(path.join(logDir, f), "utf8").catch(() => "")))
      return parts.join("\n")
    },
    dispose: async () => {
      if (/^(1|true)$/i.test(process.env.KEEP_OPENCODE_TMP ?? "")) return
      await fsp.rm(root, { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------
// Fake OpenAI-compatible chat server
// ---------------------------------------------------------------------------

/** One request the fake server saw. Header names are lower case. */
export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string | Array<string> | undefined>>
  readonly body: string
  /** `body` parsed as JSON, or undefined. */
  readonly json: unknown
  readonly at: number
}

/** What the fake server answers to a chat completion. */
export type FakeReply =
  | { readonly text: string }
  | { readonly status: number; readonly body: string; readonly contentType?: string }

/** Options of {@link startFakeChatServer}. */
export interface FakeChatServerOptions {
  /** Path prefix of the API (default `/coding/v1`, as Kimi's). */
  readonly basePath?: string
  /** Model ids for `GET {base}/models` (default `["kimi-for-coding"]`). */
  readonly models?: ReadonlyArray<string>
  /** The answer to each chat completion (default `{ text: "Hello from fake Kimi" }`). */
  readonly reply?: FakeReply | ((request: RecordedRequest) => FakeReply)
}

/** A running fake server on 127.0.0.1. */
export interface FakeChatServer {
  /** Base URL for the provider's `baseURL`, e.g. `http://127.0.0.1:1234/coding/v1`. */
  readonly baseURL: string
  readonly port: number
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Only the `POST {base}/chat/completions` requests. */
  chatRequests(): ReadonlyArray<RecordedRequest>
  close(): Promise<void>
}

/**
 * Starts an OpenAI-compatible chat server on 127.0.0.1 (a random port): `POST
 * {base}/chat/completions` streams SSE when the body says `stream: true`
 * (OpenCode always does) and answers one JSON object otherwise; `GET
 * {base}/models` lists the models. Every request is recorded with its headers.
 */
export async function startFakeChatServer(options: FakeChatServerOptions = {}): Promise<FakeChatServer> {
  const basePath = (options.basePath ?? "/coding/v1").replace(/\/+$/, "")
  const models = options.models ?? ["kimi-for-coding"]
  const requests: Array<RecordedRequest> = []
  const replyFor = (req: RecordedRequest): FakeReply => {
    const r = options.reply ?? { text: "Hello from fake Kimi" }
    return typeof r === "function" ? r(req) : r
  }

  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8")
      let json: unknown
      try {
        json = body ? JSON.parse(body) : undefined
      } catch {}
      const recorded: RecordedRequest = {
        method: req.method ?? "",
        path: req.url ?? "",
        headers: { ...req.headers },
        body,
        json,
        at: Date.now()
      }
      requests.push(recorded)
      const url = new URL(req.url ?? "/", "http://127.0.0.1")

      if (req.method === "GET" && url.pathname === `${basePath}/models`) {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(JSON.stringify({ object: "list", data: models.map((id) => ({ id, object: "model", owned_by: "fake" })) }))
        return
      }
      if (req.method !== "POST" || url.pathname !== `${basePath}/chat/completions`) {
        res.writeHead(404, { "content-type": "application/json" })
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${url.pathname}`, type: "not_found" } }))
        return
      }
      const reply = replyFor(recorded)
      if ("status" in reply) {
        res.writeHead(reply.status, { "content-type": reply.contentType ?? "application/json" })
        res.end(reply.body)
        return
      }
      const request = (json ?? {}) as { model?: string; stream?: boolean }
      const model = request.model ?? models[0] ?? "model"
      const id = `chatcmpl-${requests.length}`
      const created = Math.floor(Date.now() / 1000)
      const usage = { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 }
      if (request.stream) {
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" })
        const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
          `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`
        res.write(chunk({ role: "assistant", content: "" }, null))
        for (const piece of reply.text.match(/\S+\s*/g) ?? [reply.text]) res.write(chunk({ content: piece }, null))
        res.write(chunk({}, "stop", { usage }))
        res.end("data: [DONE]\n\n")
      } else {
        res.writeHead(200, { "content-type": "application/json" })
        res.end(
          JSON.stringify({
            id,
            object: "chat.completion",
            created,
            model,
            choices: [{ index: 0, message: { role: "assistant", content: reply.text }, finish_reason: "stop" }],
            usage
          })
        )
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  return {
    baseURL: `http://127.0.0.1:${port}${basePath}`,
    port,
    requests,
    chatRequests: () => requests.filter((r) => r.method === "POST" && r.path.startsWith(`${basePath}/chat/completions`)),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
