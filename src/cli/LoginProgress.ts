/**
 * What `kimi-auth login` shows while it cannot show a code yet, or while a
 * poll fails: which host it is asking, and when it tries again. On stderr, so
 * stdout keeps only the code and the outcome. On a terminal the status line
 * is redrawn in place and cleared once the code (or the error) is shown;
 * through a pipe or into a log each retry is one plain line, and a login that
 * works prints nothing here.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import type { RetryNotice } from "../oauth/Retry.js"
import { err, isStderrTty } from "./Output.js"

/** The first sentence of a fault's message (what happened, with the URL), without "It will be retried". */
const what = (message: string) => (message.split(/(?<=\.)\s/)[0] ?? message).replace(/\.$/, "")

const inSeconds = (millis: number) => `${Math.max(1, Math.round(millis / 1000))} s`

/** The progress display of one login. */
export interface LoginProgress {
  /** Before the first request: says which host is asked for a code (terminal only). */
  readonly asking: (oauthHost: string) => Effect.Effect<void>
  /** A retry of the first request is about to wait. */
  readonly startRetry: (retry: RetryNotice) => Effect.Effect<void>
  /** A poll failed and the next one waits `delayMillis`. */
  readonly pollRetry: (message: string, delayMillis: number) => Effect.Effect<void>
  /** Clears the status line (terminal only); call before showing the code or an error. */
  readonly clear: Effect.Effect<void>
}

/** The progress display for this process's stderr (`tty`: redraw in place; default: whether stderr is a terminal). */
export const makeLoginProgress = (tty: boolean = isStderrTty()): LoginProgress => {
  let shown = false
  // A redrawn line must fit the terminal: `\x1b[2K` clears one row, not the rows a long line wrapped onto.
  const fit = (text: string) => {
    const columns = process.stderr.columns ?? 0
    return columns > 1 && [...text].length > columns - 1 ? `${[...text].slice(0, columns - 2).join("")}…` : text
  }
  const line = (text: string) =>
    tty ? Effect.andThen(err(`\r\x1b[2K${fit(text)}`), Effect.sync(() => void (shown = true))) : err(`${text}\n`)
  return {
    asking: (host) => (tty ? line(`Asking ${host} for a login code…`) : Effect.void),
    startRetry: (r) =>
      // The wait first: on a narrow terminal the line is cut at its end.
      line(
        `Trying again in ${inSeconds(r.delayMillis)} (attempt ${r.attempt + 1} of ${r.attempts}, Ctrl-C to stop): ` +
          `${what(r.error.message)}.`
      ),
    // During polling the countdown owns the terminal's last line: this one is printed above it, for good.
    pollRetry: (message, delayMillis) =>
      tty
        ? err(`\r\x1b[2KPolling again in ${inSeconds(delayMillis)}: ${what(message)}.\n`)
        : err(`Polling again in ${inSeconds(delayMillis)}: ${what(message)}.\n`),
    clear: Effect.suspend(() => (shown ? Effect.andThen(err("\r\x1b[2K"), Effect.sync(() => void (shown = false))) : Effect.void))
  }
}
