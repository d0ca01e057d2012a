/**
 * Test support for the token store and the file lock: temporary folders under
 * `os.tmpdir()` (removed when the test's scope closes), the compiled library
 * for child processes, and a small handle on spawned `node` children.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The repository root. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/** A fresh folder under `os.tmpdir()`, removed with everything in it when the scope closes. */
export const tempDir = (prefix = "kimi-auth-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), prefix))),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

/** The source files `entries` import, transitively (relative `.js` imports of `.ts` files). */
const sourceClosure = (entries: ReadonlyArray<string>): Array<string> => {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file) || !fs.existsSync(file)) return
    seen.add(file)
    const text = fs.readFileSync(file, "utf8")
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)\.js"/g)) {
      visit(path.resolve(path.dirname(file), `${m[1]}.ts`))
    }
  }
  entries.forEach(visit)
  return [...seen].sort()
}

/**
 * Compiles `src/storage/TokenStore.ts` and `src/lock/FileLock.ts` (and what they import)
 * with the options of `tsconfig.build.json`, like `npm run build` does, and
 * returns the folder holding `storage/TokenStore.js`, `lock/FileLock.js`, ….
 *
 * The output goes to `node_modules/.cache/opencode-kimi-auth-test/<hash of the sources>`
 * rather than `dist/`: test files run in parallel, and other work in progress
 * may break the full build or rewrite `dist/` while a child process imports it.
 * Same compiler, same options, same code. Built once per source state: a
 * concurrent builder's result is reused (the folder appears by an atomic rename).
 */
export const compiledLibrary = (): string => {
  const entries = [path.join(repoRoot, "src", "storage", "TokenStore.ts"), path.join(repoRoot, "src", "lock", "FileLock.ts")]
  const hash = crypto.createHash("sha256")
  for (const file of [...sourceClosure(entries), path.join(repoRoot, "tsconfig.json"), path.join(repoRoot, "tsconfig.build.json")]) {
    hash.update(file).update("\0").update(fs.readFileSync(file)).update("\0")
  }
  const cacheRoot = path.join(repoRoot, "node_modules", ".cache", "opencode-kimi-auth-test")
  const outDir = path.join(cacheRoot, hash.digest("hex").slice(0, 16))
  if (fs.existsSync(path.join(outDir, "storage", "TokenStore.js"))) {
    // Marked as used: the sweep below (in any checkout sharing node_modules) drops builds unused for ten minutes.
    const now = new Date()
    try {
      fs.utimesSync(outDir, now, now)
    } catch {
      // Dropped meanwhile: built again below.
    }
    if (fs.existsSync(path.join(outDir, "storage", "TokenStore.js"))) return outDir
  }
  fs.mkdirSync(cacheRoot, { recursive: true })
  const work = fs.mkdtempSync(path.join(cacheRoot, "build-"))
  const tsconfig = path.join(work, "tsconfig.json")
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(repoRoot, "tsconfig.build.json"),
      compilerOptions: {
        outDir: path.join(work, "out"),
        rootDir: path.join(repoRoot, "src"),
        typeRoots: [path.join(repoRoot, "node_modules", "@types")],
        declaration: false,
        sourceMap: false
      },
      include: [],
      files: entries
    })
  )
  let log = ""
  try {
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig], {
      cwd: repoRoot,
      encoding: "utf8",
      stdio: "pipe"
    })
  } catch (e) {
    // Type errors still emit; only a missing output is fatal.
    log = String((e as { stdout?: unknown }).stdout ?? e)
  }
  if (!fs.existsSync(path.join(work, "out", "storage", "TokenStore.js"))) {
    fs.rmSync(work, { recursive: true, force: true })
    throw new Error(`Could not compile the library for child processes:\n${log}`)
  }
  try {
    fs.renameSync(path.join(work, "out"), outDir)
  } catch {
    // Another test file built the same sources first.
  }
  fs.rmSync(work, { recursive: true, force: true })
  // Builds of older source states, unused for ten minutes, are dropped.
  for (const entry of fs.readdirSync(cacheRoot)) {
    const p = path.join(cacheRoot, entry)
    try {
      if (p !== outDir && Date.now() - fs.statSync(p).mtimeMs > 10 * 60_000) fs.rmSync(p, { recursive: true, force: true })
    } catch {
      // Removed concurrently.
    }
  }
  return outDir
}

/** A `node` child process with its output collected line by line. */
export interface Child {
  readonly pid: number
  readonly process: ChildProcess
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string
  /** Waits until a line of stdout equals or starts with `prefix`, and returns it. */
  readonly waitForLine: (prefix: string, timeoutMillis?: number) => Effect.Effect<string>
  /** Waits for the process to end. */
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  /** Sends a signal. */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/**
 * Spawns `node <script> ...args`. The child is killed with SIGKILL (after a
 * SIGCONT, in case it was stopped) when the scope closes, if still running.
 */
export const spawnNode = (
  script: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>> = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [script, ...args], {
        cwd: repoRoot,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      let stdoutLines: Array<string> = []
      let partial = ""
      const waiters = new Set<() => void>()
      const notify = () => waiters.forEach((w) => w())
      child.stdout.setEncoding("utf8")
      child.stderr.setEncoding("utf8")
      child.stdout.on("data", (chunk: string) => {
        out += chunk
        partial += chunk
        const parts = partial.split("\n")
        partial = parts.pop() ?? ""
        stdoutLines = stdoutLines.concat(parts)
        notify()
      })
      child.stderr.on("data", (chunk: string) => {
        out += chunk
      })
      let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined
      child.on("exit", (code, signal) => {
        exitInfo = { code, signal }
        notify()
      })
      const exited = Effect.callback<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>((resume) => {
        const check = () => {
          if (exitInfo !== undefined) {
            waiters.delete(check)
            resume(Effect.succeed(exitInfo))
          }
        }
        waiters.add(check)
        check()
        return Effect.sync(() => waiters.delete(check))
      })
      const waitForLine = (prefix: string, timeoutMillis = 20_000) =>
        Effect.callback<string>((resume) => {
          const check = () => {
            const line = stdoutLines.find((l) => l.startsWith(prefix))
            if (line !== undefined) {
              waiters.delete(check)
              resume(Effect.succeed(line))
            } else if (exitInfo !== undefined) {
              waiters.delete(check)
              resume(Effect.die(new Error(`child exited (${JSON.stringify(exitInfo)}) before printing "${prefix}":\n${out}`)))
            }
          }
          waiters.add(check)
          check()
          return Effect.sync(() => waiters.delete(check))
        }).pipe(
          Effect.timeoutOrElse({
            duration: timeoutMillis,
            orElse: () => Effect.die(new Error(`child did not print "${prefix}" within ${timeoutMillis} ms:\n${out}`))
          })
        )
      return {
        pid: child.pid ?? -1,
        process: child,
        output: () => out,
        waitForLine,
        exited,
        kill: (signal: NodeJS.Signals) => Effect.sync(() => void child.kill(signal))
      } satisfies Child
    }),
    (child) =>
      Effect.sync(() => {
        if (child.process.exitCode === null && child.process.signalCode === null) {
          child.process.kill("SIGCONT")
          child.process.kill("SIGKILL")
        }
      })
  )
