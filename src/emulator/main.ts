#!/usr/bin/env node
/**
 * Runnable entry of the Kimi emulator:
 * `node dist/emulator/main.js --port 0 --auto-approve 500`.
 *
 * Prints `Kimi emulator listening on http://127.0.0.1:PORT` as its first
 * stdout line, then runs until interrupted (Ctrl-C / SIGTERM).
 *
 * @since 0.1.0
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { EmulatorArgsError, parseEmulatorArgs, USAGE } from "./EmulatorArgs.js"
import { serve } from "./KimiEmulator.js"

let parsed: ReturnType<typeof parseEmulatorArgs>
try {
  parsed = parseEmulatorArgs(process.argv.slice(2))
} catch (e) {
  process.stderr.write(`${e instanceof EmulatorArgsError ? e.message : String(e)}\n${USAGE}\n`)
  process.exit(2)
}
if (parsed === "help") {
  process.stdout.write(`${USAGE}\n`)
} else {
  NodeRuntime.runMain(serve(parsed))
}
