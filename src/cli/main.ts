#!/usr/bin/env node
/**
 * The `kimi-auth` executable.
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { CliError, Command } from "effect/cli"
import { rootCommand } from "./commands.js"
import { ExitCode } from "./ExitCode.js"

const VERSION = "0.1.0"

Command.run(rootCommand, { version: VERSION }).pipe(
  // Usage errors were already printed by the parser: only the exit code is left to set.
  Effect.catchIf(CliError.isCliError, () => Effect.sync(() => void (process.exitCode = ExitCode.usage))),
  // Each command reports its own defects; this catches one outside them: one line, never a stack.
  Effect.catchCause((cause) =>
    Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.sync(() => {
      process.stderr.write("error: kimi-auth stopped on an unexpected internal error. This is a bug: please report it.\n")
      process.exitCode = ExitCode.unexpected
    })
  ),
  Effect.provide(NodeServices.layer),
  NodeRuntime.runMain
)
