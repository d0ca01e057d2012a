/**
 * How `kimi-auth` answers a command line it cannot run (a typo, an unknown
 * flag, a bad value): the problem first, in a line or two on stderr, then
 * where the help is, instead of the whole help page with the error at the
 * bottom. Help asked for (`--help`, or no command) is printed as usual.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CliConfig, type CliError, CliOutput, GlobalFlag } from "effect/cli"
import type { CliInvoker } from "../light/CliWords.js"
import { currentInvoker } from "./Invoker.js"
import { write } from "./Pipes.js"

// eslint-disable-next-line no-control-regex
const printable = (s: string) => s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "?")

/** One line for one parse error, with the likely command or flag when the parser has one. */
export const usageErrorLine = (error: CliError.CliError): string => {
  switch (error._tag) {
    case "UnknownSubcommand":
      return `unknown command "${printable(error.subcommand)}".` +
        (error.suggestions.length > 0 ? ` Did you mean ${error.suggestions.map((s) => `"${s}"`).join(" or ")}?` : "")
    case "UnrecognizedOption":
      return `unknown flag ${printable(error.option)}.` +
        (error.suggestions.length > 0 ? ` Did you mean ${error.suggestions.join(" or ")}?` : "")
    default:
      return printable(error.message).replace(/\s*\n\s*/g, " ")
  }
}

/** The text printed for an invocation that failed to parse; the help it names is run as the person runs the CLI (`npx kimi-auth` after a local install). */
export const usageErrorText = (
  commandPath: ReadonlyArray<string>,
  errors: ReadonlyArray<CliError.CliError>,
  invoker: CliInvoker = "kimi-auth"
): string => {
  const name = commandPath.join(" ")
  const lines = errors.map((e) => `error: ${name}: ${usageErrorLine(e)}`)
  const what = commandPath.length > 1 ? "its flags and examples" : "the commands and examples"
  const help = [invoker, ...commandPath.slice(1)].join(" ")
  return `${lines.join("\n")}\nRun \`${help} --help\` for ${what}.\n`
}

/** Help as `effect/cli` prints it; a parse error as {@link usageErrorText}, on stderr. */
const presenter: CliOutput.Presenter = {
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.sync(() => write(process.stderr, usageErrorText(event.commandPath, event.errors, currentInvoker())))
      : CliOutput.defaultPresenter.present(event)
}

/**
 * The command line's presentation: brief parse errors, and only the global
 * flags `kimi-auth` documents (`--help`, `--version`, `--completions`); the
 * wizard and `--log-level` are left out (`--debug` is this CLI's log switch).
 */
export const cliPresentation: Layer.Layer<never> = Layer.mergeAll(
  CliOutput.layerPresenter(presenter),
  CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Version, GlobalFlag.Completions] })
)
