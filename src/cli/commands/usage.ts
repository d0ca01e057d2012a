/**
 * `kimi-auth usage [--json]`: the plan's quota from Kimi's `/usages`, drawn by
 * `UsageView.ts`.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command } from "effect/cli"
import { KimiApi } from "../../api/KimiApi.js"
import { accountFlag, debugFlag, jsonFlag } from "../CommonFlags.js"
import { exitCodeHelp } from "../ExitCode.js"
import { bold, dim, out, red } from "../Output.js"
import { run } from "../RunCommand.js"
import { usageJson, usageLines } from "../UsageView.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

/** `kimi-auth usage`. */
export const usageCommand = Command.make("usage", { account: accountFlag, json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "usage",
    flags,
    Effect.gen(function*() {
      const usage = yield* Effect.flatMap(KimiApi, (api) => api.usage).pipe(Effect.provide(KimiApi.layerFromAuth))
      const now = yield* Clock.currentTimeMillis
      yield* Effect.logDebug(`usage: ${usage.windows.length} window(s) read from /usages (${usage.shape ?? "no"} shape)`)
      if (flags.json) yield* out(JSON.stringify(usageJson(usage, now)) + "\n")
      else yield* out(usageLines(usage, now, { warn: red, dim, bold }).join("\n") + "\n")
    }),
    { account: Option.getOrUndefined(flags.account) }
  )).pipe(
    Command.withDescription(
      "Show the plan's quota from Kimi's /usages: each window (5-hour, weekly, monthly total and monthly code; " +
        "used/limit where Kimi sends counts) with a bar, and when it resets (local time with its time zone, and a " +
        "countdown); then the booster wallet and the monthly charge limit. Uses the stored login. " + exitCodeHelp
    ),
    Command.withShortDescription(summaryOf("usage")),
    Command.withExamples(examplesOf("usage"))
  )
