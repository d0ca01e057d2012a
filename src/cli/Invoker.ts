/**
 * How the person at the terminal runs `kimi-auth`, so that the commands the
 * CLI names work when pasted: `kimi-auth` when it is on PATH (a global
 * install, a link), `npx kimi-auth` after a local install (the script lives
 * in a project's `node_modules` and no `kimi-auth` is on PATH) or when npm
 * ran it (`npx`, `npm exec`). Read only on the way to printing a hint.
 *
 * @since 0.3.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { CliInvoker } from "../edge/HintWords.js"

/** What {@link invokerRule} reads: the running script, npm's variables, and whether `kimi-auth` is on PATH. */
export interface InvokerFacts {
  /** The script Node runs (`process.argv[1]`). */
  readonly script: string | undefined
  /** `npm_command` (`exec` under `npx` / `npm exec`). */
  readonly npmCommand: string | undefined
  /** Whether a `kimi-auth` executable is on PATH (asked only when it matters). */
  readonly onPath: () => boolean
}

/** The invoker rule: npm ran it, or a script inside `node_modules` with none on PATH, is `npx kimi-auth`. */
export const invokerRule = (facts: InvokerFacts): CliInvoker =>
  facts.npmCommand === "exec" ||
    (facts.script !== undefined && facts.script.split(/[\\/]/).includes("node_modules") && !facts.onPath())
    ? "npx kimi-auth"
    : "kimi-auth"

/** Whether `kimi-auth` (or `kimi-auth.cmd` on Windows) is in one of PATH's folders. */
export const kimiAuthOnPath = (env: Readonly<Record<string, string | undefined>> = process.env): boolean => {
  const names = process.platform === "win32" ? ["kimi-auth.cmd", "kimi-auth.exe", "kimi-auth"] : ["kimi-auth"]
  for (const dir of (env["PATH"] ?? "").split(path.delimiter)) {
    if (dir === "") continue
    for (const name of names) {
      try {
        if (fs.statSync(path.join(dir, name)).isFile()) return true
      } catch {
        // not there
      }
    }
  }
  return false
}

/** How this process was run, by {@link invokerRule}. */
export const currentInvoker = (): CliInvoker =>
  invokerRule({ script: process.argv[1], npmCommand: process.env["npm_command"], onPath: () => kimiAuthOnPath() })
