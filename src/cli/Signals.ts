/**
 * How `kimi-auth` stops on SIGINT (Ctrl-C) and SIGTERM. The first signal
 * interrupts the command; a token refresh in flight is uninterruptible in the
 * core (`TokenManager`), so the process waits, at most the request deadline,
 * until the rotated tokens are saved, then exits 130 (SIGINT) or 143
 * (SIGTERM). A second signal exits at once and says what that may cost.
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

/** Printed when the first signal did not end the process at once (a refresh is being saved). */
export const waitingNotice = (signal: HandledSignal) =>
  `kimi-auth: ${signal} received; finishing the token refresh in flight so the new tokens are saved ` +
  `(at most the request timeout). ${signal === "SIGINT" ? "Press Ctrl-C again" : "Send SIGTERM again"} to stop at once, ` +
  `which may lose the login.\n`

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
  const onSignal = (signal: HandledSignal) => {
    if (received !== undefined) {
      process.stderr.write(`\n${abandonedNotice(signal)}`)
      process.exit(signalExitCode(signal))
    }
    received = signal
    fiber.interruptUnsafe(fiber.id)
    notice = setTimeout(() => process.stderr.write(`\n${waitingNotice(signal)}`), NOTICE_AFTER_MILLIS)
    notice.unref?.()
  }
  const onSigint = () => onSignal("SIGINT")
  const onSigterm = () => onSignal("SIGTERM")
  fiber.addObserver((exit) => {
    process.removeListener("SIGINT", onSigint)
    process.removeListener("SIGTERM", onSigterm)
    if (notice !== undefined) clearTimeout(notice)
    teardown(exit, (code) => {
      if (received !== undefined) process.exit(signalExitCode(received))
      if (code !== 0) process.exit(code)
    })
  })
  process.on("SIGINT", onSigint)
  process.on("SIGTERM", onSigterm)
})
