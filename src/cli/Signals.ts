/**
 * How `kimi-auth` stops on SIGINT (Ctrl-C) and SIGTERM. The first signal
 * interrupts the command; a token refresh on the wire is awaited by the core
 * (`TokenManager`) so its rotated tokens are saved, and the process exits 130
 * (SIGINT) or 143 (SIGTERM) once they are, but waits at most
 * {@link SHUTDOWN_BUDGET_MILLIS} (10 s, said on stderr): only a running
 * process waits a late answer's long bound. A second signal exits at once and
 * says what that may cost.
 *
 * Process-level handlers belong to the CLI only: the library, the facade and
 * the plugin never install any.
 *
 * @since 0.1.0
 */
import * as Runtime from "effect/Runtime"
import { ExitCode } from "./ExitCode.js"

/** The signals handled, each with its conventional exit code (128 + number). */
const exitCodes = { SIGINT: ExitCode.interrupted, SIGTERM: ExitCode.terminated } as const

type HandledSignal = keyof typeof exitCodes

/** The exit code for a process stopped by `signal`. */
export const signalExitCode = (signal: HandledSignal): number => exitCodes[signal]

/** After this long still running after the first signal, say why the process is waiting. */
const NOTICE_AFTER_MILLIS = 300

/**
 * The longest a process stopped by a signal waits for a refresh on the wire:
 * 10 s. Kimi answers in well under a second; a person pressing Ctrl-C will
 * wait a few seconds when told why, not minutes. After it, the process exits
 * and the in-flight marker tells the next run what happened.
 */
export const SHUTDOWN_BUDGET_MILLIS = 10_000

/** Printed when the first signal did not end the process at once (a refresh is being saved). */
export const waitingNotice = (signal: HandledSignal) =>
  `kimi-auth: ${signal} received; finishing the token refresh in flight so the new tokens are saved ` +
  `(at most ${SHUTDOWN_BUDGET_MILLIS / 1000} s). ${signal === "SIGINT" ? "Press Ctrl-C again" : "Send SIGTERM again"} ` +
  `to stop at once, which may lose the login.\n`

/** Printed when the shutdown budget ran out before the refresh in flight was answered. */
export const budgetSpentNotice = (signal: HandledSignal) =>
  `kimi-auth: stopped by ${signal} after waiting ${SHUTDOWN_BUDGET_MILLIS / 1000} s for the token refresh in flight; ` +
  `its outcome is unknown. Run \`kimi-auth token\` again: it tries the saved refresh token once and says whether ` +
  `the login survived.\n`

/** Printed when a second signal stops the process at once. */
export const abandonedNotice = (signal: HandledSignal) =>
  `kimi-auth: stopped at once by a second ${signal}. A token refresh that was in flight may not have been ` +
  `saved: if Kimi had already rotated the refresh token, the stored login is lost and the next command ` +
  `will ask you to run \`kimi-auth login\` again.\n`

/**
 * Runs an Effect as the process's main program (as `NodeRuntime.runMain`),
 * with the signal rules above. Without a signal the exit code is the one the
 * command set (`process.exitCode`), or the runtime's for an unhandled failure.
 */
export const runMain = Runtime.makeRunMain(({ fiber, teardown }) => {
  let received: HandledSignal | undefined
  let notice: ReturnType<typeof setTimeout> | undefined
  let budget: ReturnType<typeof setTimeout> | undefined
  const onSignal = (signal: HandledSignal) => {
    if (received !== undefined) {
      process.stderr.write(`\n${abandonedNotice(signal)}`)
      process.exit(signalExitCode(signal))
    }
    received = signal
    fiber.interruptUnsafe(fiber.id)
    notice = setTimeout(() => process.stderr.write(`\n${waitingNotice(signal)}`), NOTICE_AFTER_MILLIS)
    notice.unref?.()
    budget = setTimeout(() => {
      process.stderr.write(`\n${budgetSpentNotice(signal)}`)
      process.exit(signalExitCode(signal))
    }, SHUTDOWN_BUDGET_MILLIS)
    budget.unref?.()
  }
  const onSigint = () => onSignal("SIGINT")
  const onSigterm = () => onSignal("SIGTERM")
  fiber.addObserver((exit) => {
    process.removeListener("SIGINT", onSigint)
    process.removeListener("SIGTERM", onSigterm)
    if (notice !== undefined) clearTimeout(notice)
    if (budget !== undefined) clearTimeout(budget)
    teardown(exit, (code) => {
      if (received !== undefined) process.exit(signalExitCode(received))
      if (code !== 0) process.exit(code)
    })
  })
  process.on("SIGINT", onSigint)
  process.on("SIGTERM", onSigterm)
})
