/**
 * The full `kimi-auth` command line on the Effect runtime: every command,
 * `--help`, `--version`, and the exit codes. `main.ts` loads it on demand.
 *
 * @since 0.1.0
 */
import * as NodeChildProcessSpawner from "@effect/platform-node-shared/NodeChildProcessSpawner"
import * as NodeFileSystem from "@effect/platform-node-shared/NodeFileSystem"
import * as NodePath from "@effect/platform-node-shared/NodePath"
import * as NodeStdio from "@effect/platform-node-shared/NodeStdio"
import * as NodeTerminal from "@effect/platform-node-shared/NodeTerminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { CliError, Command } from "effect/cli"
import { rootCommand } from "./commands.js"
import { ExitCode } from "./ExitCode.js"
import { packageVersion } from "./Help.js"
import { cliPresentation } from "./Invocation.js"
import { write } from "./Pipes.js"
import { runMain } from "./Signals.js"

/** The Node services `effect/cli` needs (what `@effect/platform-node`'s `NodeServices.layer` composes, without its HTTP stack). */
const nodeServices = Layer.provideMerge(
  NodeChildProcessSpawner.layer,
  Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeStdio.layer, NodeTerminal.layer)
)

/** Runs the command line given in `process.argv` until it ends; sets the exit code. */
export const runCli = (): void =>
  Command.run(rootCommand, { version: packageVersion() }).pipe(
    // Usage errors were already printed by the parser: only the exit code is left to set.
    Effect.catchIf(CliError.isCliError, () => Effect.sync(() => void (process.exitCode = ExitCode.usage))),
    // Each command reports its own defects; this catches one outside them: one line, never a stack.
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.sync(() => {
        write(process.stderr, "error: kimi-auth stopped on an unexpected internal error. This is a bug: please report it.\n")
        process.exitCode = ExitCode.unexpected
      })
    ),
    Effect.provide(Layer.merge(nodeServices, cliPresentation)),
    runMain
  )
