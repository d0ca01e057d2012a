/**
 * How the person at the terminal runs `kimi-auth`, so that the commands the
 * CLI names work when pasted: `kimi-auth` when it is on PATH (a global
 * install, a link), `npx kimi-auth` after a local install (the script lives
 * in a project's `node_modules` and no `kimi-auth` is on PATH). Read only on
 * the way to printing a hint.
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import type { CliInvoker } from "../light/CliWords.js"
import { invokerRule } from "./RunCommandDecisions.js"

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
  invokerRule({ script: process.argv[1], onPath: () => kimiAuthOnPath() })
