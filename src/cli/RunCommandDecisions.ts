/**
 * The decisions of how a `kimi-auth` command tells its outcome, pure and
 * tested as tables (test/cli/commands.test.ts, test/edge/HintWords.test.ts):
 * the `--json` error line, what a defect may print, and how the person runs
 * the CLI (so the commands a hint names work when pasted). `RunCommand.ts`
 * and `Invoker.ts` wire them.
 *
 * @since 0.2.0
 */
import type { CliInvoker } from "../light/CliWords.js"
import type { ExitCode } from "./ExitCode.js"

/** The `--json` line of a failure: `{ event: "error", error, exit_code, message }`. */
export const errorEvent = (error: string, code: ExitCode, message: string): string =>
  JSON.stringify({ event: "error", error, exit_code: code, message }) + "\n"

/** A defect's kind, safe to print: an Error's name (letters, digits, `_`; at most 40), else its `typeof`. Never its message. */
export const defectKind = (defect: unknown): string =>
  defect instanceof Error ? defect.name.replace(/[^A-Za-z0-9_]/g, "").slice(0, 40) || "Error" : typeof defect

/** What a defect in command `name` says: a bug to report, and that the stored login is unchanged. */
export const defectMessage = (name: string, kind: string): string =>
  `kimi-auth ${name} stopped on an unexpected internal error (${kind}). This is a bug: ` +
  `please report it with the command you ran. Your stored login was not changed by this message.`

/** The `at …` frames of a stack (at most 12), without its message line (which may hold a secret). */
export const stackFrames = (stack: string): string =>
  stack.split("\n").filter((l) => /^\s+at /.test(l)).slice(0, 12).join("\n")

/** What {@link invokerRule} reads: the running script, and whether `kimi-auth` is on PATH. */
export interface InvokerFacts {
  /** The script Node runs (`process.argv[1]`, links resolved: under `npx` it is the package's own file). */
  readonly script: string | undefined
  /** Whether a `kimi-auth` executable is on PATH (asked only when it matters). */
  readonly onPath: () => boolean
}

/**
 * The invoker rule: a script inside a `node_modules` folder with no
 * `kimi-auth` on PATH (a local install, run by `npx`) is `npx kimi-auth`;
 * anything else (a global install, a link, a checkout) is `kimi-auth`.
 * npm's own variables are not read: they leak into every child of a
 * process npm started.
 */
export const invokerRule = (facts: InvokerFacts): CliInvoker =>
  facts.script !== undefined && facts.script.split(/[\\/]/).includes("node_modules") && !facts.onPath()
    ? "npx kimi-auth"
    : "kimi-auth"
