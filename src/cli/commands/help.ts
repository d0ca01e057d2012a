/**
 * `kimi-auth help [command|topic]` and `kimi-auth version` in the command
 * tree. The fast path (`main.ts`, `Help.ts`) answers both before Effect
 * loads; they are here so that shell completions and `effect/cli`'s own
 * pages list them, and answer the same when reached (the same pages).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Argument, Command } from "effect/cli"
import { helpAnswer, helpRequest, packageVersion } from "../Help.js"
import { COMMAND_PAGES, TOPIC_PAGES } from "../HelpPages.js"
import { currentInvoker } from "../Invoker.js"
import { err, out } from "../Output.js"

/** Prints the fast path's answer to `args` (always a help request here) and sets its exit code. */
const answer = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const request = helpRequest(args) ?? { _tag: "Root" as const, exitCode: 0 }
    const a = helpAnswer(request, packageVersion(), currentInvoker())
    yield* out(a.stdout)
    if (a.stderr !== "") yield* err(a.stderr)
    yield* Effect.sync(() => {
      process.exitCode = a.exitCode
    })
  })

/** `kimi-auth help [command|topic]`. */
export const helpCommand = Command.make(
  "help",
  {
    topic: Argument.String("topic").pipe(
      Argument.withDescription(`A command (${Object.keys(COMMAND_PAGES).join(", ")}) or a topic (${Object.keys(TOPIC_PAGES).join(", ")})`),
      Argument.optional
    )
  },
  ({ topic }) => answer(["help", ...Option.toArray(topic)])
).pipe(Command.withShortDescription("This page, or a command's or topic's"))

/** `kimi-auth version`. */
export const versionCommand = Command.make("version", {}, () => answer(["version"])).pipe(
  Command.withShortDescription("Print the version (also --version)")
)
