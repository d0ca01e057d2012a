/**
 * The terminal's words, Effect-free: colours when stdout is a terminal (none
 * for pipes, `NO_COLOR` or `TERM=dumb`), durations, instants and frames. The
 * CLI's fast paths (`status`, `help`) and the Effect commands (through
 * `Output.ts`) print with the same functions.
 *
 * @since 0.2.0
 */

/** Whether stderr is an interactive terminal (progress lines are redrawn in place there). */
export const isStderrTty = (): boolean => Boolean(process.stderr.isTTY) && process.env["TERM"] !== "dumb"

/** Whether stdout is an interactive terminal (and colour is not disabled). */
export const isTty = (): boolean => Boolean(process.stdout.isTTY) && !process.env["NO_COLOR"] && process.env["TERM"] !== "dumb"

const sgr = (code: string) => (s: string) => (isTty() ? `\x1b[${code}m${s}\x1b[0m` : s)

/** Bold. */
export const bold = sgr("1")
/** Cyan. */
export const cyan = sgr("36")
/** Green. */
export const green = sgr("32")
/** Red. */
export const red = sgr("31")
/** Dim. */
export const dim = sgr("2")

/** `mm:ss` (or `h:mm:ss`) for a number of seconds. */
export const clock = (seconds: number): string => {
  const s = Math.max(0, Math.floor(seconds))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const ss = String(s % 60).padStart(2, "0")
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`
}

/** A human duration such as `14m 05s` or `2h 03m`. */
export const humanDuration = (seconds: number): string => {
  const s = Math.max(0, Math.floor(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** Draws a box around lines (TTY only; plain indented lines otherwise). */
export const frame = (lines: ReadonlyArray<string>): string => {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length
  if (!isTty()) return lines.map((l) => (l === "" ? "" : `  ${l}`)).join("\n") + "\n"
  const width = Math.max(...lines.map(visible))
  const top = `╭${"─".repeat(width + 2)}╮`
  const bottom = `╰${"─".repeat(width + 2)}╯`
  const body = lines.map((l) => `│ ${l}${" ".repeat(width - visible(l))} │`)
  return [top, ...body, bottom].join("\n") + "\n"
}

/** An epoch-seconds instant as ISO 8601; a value no date can hold (say `1e308` from a hostile file) says so instead of throwing. */
export const isoSeconds = (seconds: number): string => {
  const date = new Date(seconds * 1000)
  return Number.isNaN(date.getTime()) ? `an invalid time (${String(seconds).slice(0, 24)})` : date.toISOString()
}
