/** Runs the built `kimi-auth` CLI as a real child process. */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** The built CLI entry. */
export const cliPath = path.join(repoRoot, "dist", "cli", "main.js")

/** The outcome of one run. */
export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** A fresh temp folder (removed by the caller with `rmTemp`). */
export const makeTemp = (prefix = "kimi-auth-test-"): string => fs.mkdtempSync(path.join(os.tmpdir(), prefix))

/** Removes a temp folder. */
export const rmTemp = (dir: string) => fs.rmSync(dir, { recursive: true, force: true })

/** Environment for an isolated run: HOME and the storage folder inside `home`, no DEBUG, no browser. */
export const isolatedEnv = (home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env }
  // XDG_DATA_HOME: logout edits OpenCode's auth.json there; below HOME it is the test's own.
  // CI too: CI runs set it, and the CLI opens no browser under CI; each test chooses its own display.
  for (const k of ["DEBUG", "KIMI_OAUTH_HOST", "KIMI_CODE_OAUTH_HOST", "KIMI_CODE_BASE_URL", "OPENCODE_KIMI_AUTH_DIR", "DISPLAY", "WAYLAND_DISPLAY", "CI", "XDG_DATA_HOME"]) {
    delete env[k]
  }
  return { ...env, HOME: home, OPENCODE_KIMI_AUTH_DIR: path.join(home, ".opencode-kimi-auth"), NO_COLOR: "1", ...extra }
}

/** How a run may be watched and bounded. */
export interface RunOptions {
  readonly timeoutMs?: number
  readonly onSpawn?: (child: import("node:child_process").ChildProcess) => void
}

/** Runs `node dist/cli/main.js ...args`, with a hard timeout. */
export const runCli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, options: RunOptions = {}): Promise<CliResult> =>
  runScript(cliPath, args, env, options)

/** Runs `node <script> ...args` (another copy or entry of the CLI), with a hard timeout. */
export const runScript = (
  script: string,
  args: ReadonlyArray<string>,
  env: NodeJS.ProcessEnv,
  options: RunOptions = {}
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env, stdio: ["ignore", "pipe", "pipe"] })
    options.onSpawn?.(child)
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c
    })
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${path.basename(script)} ${args.join(" ")} timed out; stdout: ${stdout}; stderr: ${stderr}`))
    }, options.timeoutMs ?? 30_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
