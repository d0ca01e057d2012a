/**
 * Runs the built `kimi-auth` CLI under a real pseudo-terminal, with util-linux
 * `script` (package bsdutils, essential on Debian and Ubuntu, so present on a
 * bare CI image): the child's stdin, stdout and stderr are the pty slave, so
 * `process.stdout.isTTY` is true and Ctrl-C (`\x03` written to the master) is
 * turned into SIGINT by the terminal's line discipline, as in a real shell.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process"
import { cliPath } from "./cli.js"

/** Whether util-linux `script` is usable here (Linux only: BSD/macOS `script` takes other flags). */
export const hasScript: boolean = process.platform === "linux" &&
  spawnSync("script", ["--version"], { encoding: "utf8" }).stdout?.includes("util-linux") === true

/** POSIX shell quoting. */
const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

/** The outcome of a run under the pty. */
export interface PtyResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** Everything the terminal showed, raw: escapes, `\r\n` line ends, the echo of typed keys. */
  readonly output: string
}

/** A CLI running under a pty. */
export interface PtyRun {
  /** The terminal output so far. */
  readonly output: () => string
  /** Types into the terminal (`"\x03"` is Ctrl-C). */
  readonly type: (text: string) => void
  /** Resolves with the output so far once `predicate` holds for it; rejects after `timeoutMs`. */
  readonly waitFor: (predicate: (output: string) => boolean, timeoutMs?: number) => Promise<string>
  /** Resolves when the CLI (and `script`) exited. */
  readonly exited: Promise<PtyResult>
  readonly child: ChildProcessWithoutNullStreams
}

/** Starts `node dist/cli/main.js ...args` under a pty; killed with SIGKILL after `timeoutMs`. */
export const runInPty = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, options: { readonly timeoutMs?: number } = {}): PtyRun => {
  const command = `exec ${[process.execPath, cliPath, ...args].map(quote).join(" ")}`
  // -q quiet, -f flush at once, -e the child's exit code, -c the command; no typescript file.
  const child = spawn("script", ["-qfec", command, "/dev/null"], {
    env: { ...env, SHELL: "/bin/sh" },
    stdio: ["pipe", "pipe", "pipe"]
  })
  let output = ""
  const waiters = new Set<() => void>()
  const onData = (chunk: string) => {
    output += chunk
    for (const w of [...waiters]) w()
  }
  child.stdout.setEncoding("utf8").on("data", onData)
  child.stderr.setEncoding("utf8").on("data", onData)
  const exited = new Promise<PtyResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`kimi-auth ${args.join(" ")} under a pty timed out; output: ${JSON.stringify(output)}`))
    }, options.timeoutMs ?? 30_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      for (const w of [...waiters]) w()
      resolve({ code, signal, output })
    })
  })
  const waitFor = (predicate: (output: string) => boolean, timeoutMs = 15_000) =>
    new Promise<string>((resolve, reject) => {
      const check = () => {
        if (predicate(output)) {
          done()
          resolve(output)
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done()
          reject(new Error(`the CLI exited before the expected output; output: ${JSON.stringify(output)}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`timed out waiting for output; output: ${JSON.stringify(output)}`))
      }, timeoutMs)
      const done = () => {
        clearTimeout(timer)
        waiters.delete(check)
      }
      waiters.add(check)
      check()
    })
  return {
    output: () => output,
    type: (text) => void child.stdin.write(text),
    waitFor,
    exited,
    child
  }
}

/** Every ANSI escape sequence (CSI and OSC) in a text. */
// eslint-disable-next-line no-control-regex
export const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g

/** The text without ANSI escapes. */
export const stripAnsi = (s: string) => s.replace(ANSI, "")
