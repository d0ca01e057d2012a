/**
 * How every `kimi-auth` command body runs: with every service, logs on
 * stderr, and its outcome turned into an exit code. A typed error prints its
 * message (or one JSON line); a defect prints one line naming its kind; none
 * escapes as a stack trace.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { layerNode, type KimiAuthLayerOptions, type KimiAuthServices } from "../KimiAuth.js"
import { edgeLoggingLayer } from "../edge/Runtime.js"
import { cliHintWords } from "../edge/HintWords.js"
import { messageIn, type NextStep } from "../Errors.js"
import type { KimiRegion } from "../light/Region.js"
import { TokenStore } from "../storage/TokenStore.js"
import { debugEnabled } from "./CommonFlags.js"
import { ExitCode, exitCodeFor } from "./ExitCode.js"
import { defectKind, defectMessage, errorEvent, stackFrames } from "./RunCommandDecisions.js"
import { currentInvoker } from "./Invoker.js"
import { err, out, red } from "./Output.js"

/** The flags `run` reads: `--debug`, and `--json` where the command has it. */
export interface RunFlags {
  readonly debug: boolean
  readonly json?: boolean
}

/** Logs go to stderr so stdout stays clean for `token` and `--json`; Debug level with `--debug`. */
export const loggingLayer = (debug: boolean) => edgeLoggingLayer("stderr", debugEnabled({ debug }))

/**
 * The last resort for a defect (a bug, or a value nothing expected): one line
 * naming its kind, exit 1, never a stack on stdout or stderr (a message may
 * hold what it choked on, say a header value with a token in it). With
 * `--debug`, the stack frames, without the message line.
 */
const reportDefect = (name: string, flags: RunFlags, cause: Cause.Cause<unknown>) =>
  Effect.gen(function*() {
    const defect = Cause.squash(cause)
    const message = defectMessage(name, defectKind(defect))
    if (defect instanceof Error && typeof defect.stack === "string" && debugEnabled(flags)) {
      yield* err(`${stackFrames(defect.stack)}\n`)
    }
    if (flags.json) yield* out(errorEvent("Defect", ExitCode.unexpected, message))
    else yield* err(`${red("error:")} ${message}\n`)
    process.exitCode = ExitCode.unexpected
  })

/**
 * Runs a command body with every service, and maps the outcome to an exit
 * code: success sets 0 (or the code the body returns), a typed error prints
 * its message (or JSON) and sets its code. Nothing escapes as a stack trace.
 */
export const run = <E extends { readonly _tag: string; readonly message: string; readonly hint?: NextStep | undefined }>(
  name: string,
  flags: RunFlags,
  body: Effect.Effect<ExitCode | void, E, KimiAuthServices>,
  options: KimiAuthLayerOptions = {}
) => {
  /** The configured region, once known: the login hint of an error names its commands. */
  let region: KimiRegion | undefined
  return Effect.gen(function*() {
    const s = yield* KimiAuthConfig
    region = s.region
    yield* Effect.logDebug(
      `${name}: OAuth host ${s.oauthHost}, API base ${s.apiBaseUrl}, client id ${s.clientId}, token file ${s.tokenFilePath}`
    )
    return yield* body.pipe(
      // The stored login's region, when there is one, names the commands that log in there again.
      Effect.tapError(() =>
        Effect.flatMap(TokenStore, (store) => store.load).pipe(
          Effect.tap((stored) => Effect.sync(() => void (region = stored?.region ?? region))),
          Effect.ignore
        )
      )
    )
  }).pipe(
    Effect.provide(layerNode(options)),
    Effect.matchEffect({
      onSuccess: (code) => Effect.sync(() => void (process.exitCode = code ?? ExitCode.ok)),
      onFailure: (error) =>
        Effect.gen(function*() {
          const code = exitCodeFor(error._tag)
          // The error's hint in the CLI's words: its region (else the login's, else the configured one), and `npx` after a local install.
          const message = messageIn(error, cliHintWords(region, currentInvoker()))
          yield* Effect.logDebug(`${name}: failed with ${error._tag}; exit code ${code}`)
          if (flags.json) yield* out(errorEvent(error._tag, code, message))
          else yield* err(`${red("error:")} ${message}\n`)
          process.exitCode = code
        })
    }),
    Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : reportDefect(name, flags, cause)),
    Effect.onInterrupt(() => Effect.sync(() => void (process.exitCode = ExitCode.interrupted))),
    Effect.provide(loggingLayer(flags.debug))
  )
}
