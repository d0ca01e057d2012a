/**
 * `kimi-auth status [--json]`: whether you are logged in and until when,
 * never a secret and no request. What it says for each login state is a pure
 * function of the `LoginStatus` (`StatusView.ts`), which the fast path
 * (`FastStatus.ts`, no Effect) prints too.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command } from "effect/cli"
import { loginStatus } from "../../oauth/LoginStatus.js"
import { KimiAuthConfig } from "../../config/KimiAuthConfig.js"
import { accountFlag, debugFlag, jsonFlag } from "../CommonFlags.js"
import { bold, dim, green, out, red } from "../Output.js"
import { currentInvoker } from "../Invoker.js"
import { run } from "../RunCommand.js"
import { namedAccount, statusDebugLine, statusExitCode, statusOutput, statusState } from "../StatusView.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

export {
  loginCommandFor,
  statusDebugLine,
  statusExitCode,
  statusJson,
  type StatusState,
  statusState,
  type StatusStyle,
  statusText
} from "../StatusView.js"

/** `kimi-auth status`. */
export const statusCommand = Command.make("status", { account: accountFlag, json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "status",
    flags,
    Effect.gen(function*() {
      const status = yield* loginStatus
      const named = namedAccount((yield* KimiAuthConfig).account)
      yield* Effect.logDebug(statusDebugLine(status))
      yield* out(statusOutput(status, named, flags.json, { bold, dim, red, green }, currentInvoker()))
      return statusExitCode(statusState(status))
    }),
    { account: Option.getOrUndefined(flags.account) }
  )).pipe(
    Command.withDescription("Show whether you are logged in, when the access token expires, the device id and the token file. Never prints a secret and makes no request. Exit code 7 when not logged in (or when Kimi refused the last refresh)."),
    Command.withShortDescription(summaryOf("status")),
    Command.withExamples(examplesOf("status"))
  )
