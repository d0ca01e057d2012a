/**
 * `kimi-auth --help`, `help [command|topic]`, `<command> --help`,
 * `--version` and `version`, answered without the Effect runtime: which of
 * them a command line asks for ({@link helpRequest}, pure), and the text
 * ({@link helpAnswer}) from the pages in `HelpPages.ts`, with the commands
 * written as the person runs them (`npx kimi-auth` after a local install).
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import type { CliInvoker } from "../light/CliWords.js"
import { ExitCode } from "./ExitCode.js"
import { COMMAND_PAGES, type CommandName, type CommandPage, TOPIC_PAGES } from "./HelpPages.js"

/** What a command line asks of the fast help. */
export type HelpRequest =
  | { readonly _tag: "Root"; readonly exitCode: number }
  | { readonly _tag: "Command"; readonly name: CommandName }
  | { readonly _tag: "Topic"; readonly name: string }
  | { readonly _tag: "Unknown"; readonly name: string }
  | { readonly _tag: "Version" }

const isCommand = (name: string): name is CommandName => Object.hasOwn(COMMAND_PAGES, name)
const isHelpFlag = (a: string | undefined) => a === "--help" || a === "-h"

/**
 * The help a command line asks for, or `undefined` when it asks for
 * something else (the full command line answers). No arguments prints the
 * root page with exit code 2, as a usage error.
 */
export const helpRequest = (args: ReadonlyArray<string>): HelpRequest | undefined => {
  const [first, second, ...rest] = args
  if (rest.length > 0) return undefined
  if (first === undefined) return { _tag: "Root", exitCode: ExitCode.usage }
  if (second === undefined) {
    if (isHelpFlag(first) || first === "help") return { _tag: "Root", exitCode: ExitCode.ok }
    if (first === "--version" || first === "-v" || first === "version") return { _tag: "Version" }
    return undefined
  }
  if (first === "help") {
    if (isCommand(second)) return { _tag: "Command", name: second }
    if (Object.hasOwn(TOPIC_PAGES, second)) return { _tag: "Topic", name: second }
    return { _tag: "Unknown", name: second }
  }
  return isCommand(first) && isHelpFlag(second) ? { _tag: "Command", name: first } : undefined
}

/** `{k}` in a page's text, as the person runs the CLI. */
const as = (invoker: CliInvoker) => (text: string) => text.replaceAll("{k}", invoker)

/** Two columns: the left one padded to its widest entry. */
const columns = (rows: ReadonlyArray<readonly [string, string]>): Array<string> => {
  const width = Math.max(...rows.map(([l]) => l.length))
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`)
}

/** The root page: what it is, the commands, where the rest is. */
export const rootPage = (version: string, invoker: CliInvoker): string =>
  [
    `kimi-auth ${version}: log in to Kimi (Kimi For Coding) with the OAuth device flow; the tokens stay fresh.`,
    "",
    "Usage: {k} <command> [flags]",
    "",
    "Commands:",
    ...columns([
      ...Object.entries(COMMAND_PAGES).map(([name, page]) => [name, page.summary] as const),
      ["help [command]", "This page, or a command's"],
      ["version", "Print the version (also --version)"]
    ]),
    "",
    "Every command takes --help and --debug. --completions <bash|zsh|fish> prints a completion script.",
    "",
    "Examples:",
    "  # Log in once; the tokens are kept fresh from then on",
    "  {k} login",
    "  # Logged in? Until when? (for scripts and prompts)",
    "  {k} status --json",
    "",
    "More: {k} help <command>, {k} help exit-codes, {k} help completions, {k} help environment",
    ""
  ].map(as(invoker)).join("\n")

/** A command's page. */
export const commandPage = (name: CommandName, invoker: CliInvoker): string => {
  const page: CommandPage = COMMAND_PAGES[name]
  return [
    `{k} ${name}: ${page.summary}`,
    "",
    `Usage: {k} ${name} ${page.usage}`,
    "",
    "Flags:",
    ...columns(page.flags),
    "",
    "Examples:",
    ...page.examples.flatMap(([command, text]) => [`  # ${text}`, `  ${command}`]),
    ...(page.notes ? ["", ...page.notes] : []),
    ""
  ].map(as(invoker)).join("\n")
}

/** A topic's page. */
export const topicPage = (name: string, invoker: CliInvoker): string =>
  [...(TOPIC_PAGES[name] ?? []), ""].map(as(invoker)).join("\n")

/** `kimi-auth --version`'s line, as `effect/cli` prints it. */
export const versionLine = (version: string): string => `kimi-auth v${version}\n`

/** The package's version, from its `package.json` (two folders up from `src/cli/` and from `dist/cli/`). */
export const packageVersion = (): string => {
  try {
    const pkg: unknown = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8"))
    const v = typeof pkg === "object" && pkg !== null ? (pkg as Record<string, unknown>)["version"] : undefined
    return typeof v === "string" ? v : "unknown"
  } catch {
    return "unknown"
  }
}

/** What the fast help prints: on stdout (or stderr for an unknown topic), and the exit code. */
export interface HelpAnswer {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number
}

/** The answer to a help request. */
export const helpAnswer = (request: HelpRequest, version: string, invoker: CliInvoker): HelpAnswer => {
  const ok = (stdout: string, exitCode: number = ExitCode.ok): HelpAnswer => ({ stdout, stderr: "", exitCode })
  switch (request._tag) {
    case "Root":
      return ok(rootPage(version, invoker), request.exitCode)
    case "Command":
      return ok(commandPage(request.name, invoker))
    case "Topic":
      return ok(topicPage(request.name, invoker))
    case "Version":
      return ok(versionLine(version))
    case "Unknown":
      return {
        stdout: "",
        stderr: `error: ${invoker} help: no command or topic "${request.name.replace(/[^\x20-\x7e]/g, "?")}".\n` +
          `Commands: ${Object.keys(COMMAND_PAGES).join(", ")}. Topics: ${Object.keys(TOPIC_PAGES).join(", ")}.\n`,
        exitCode: ExitCode.usage
      }
  }
}
