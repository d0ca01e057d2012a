/**
 * How `kimi-auth usage` shows the plan's quota: one line per window with
 * used/limit, a percentage bar, and the reset as a local time and a
 * countdown; or one JSON object for scripts. Pure: the time is passed in.
 *
 * @since 0.2.0
 */
import { countdown, isExhausted, type KimiUsage, localTime, type QuotaWindow, usedFraction } from "../api/Usage.js"

/** Cells of the percentage bar. */
const BAR_WIDTH = 20

/** `██████░░░░░░░░░░░░░░` for a fraction; dots when unknown. */
export const bar = (fraction: number | undefined, width: number = BAR_WIDTH): string => {
  if (fraction === undefined) return "·".repeat(width)
  const full = Math.round(fraction * width)
  return "█".repeat(full) + "░".repeat(width - full)
}

const percent = (w: QuotaWindow) => {
  const f = usedFraction(w)
  return f === undefined ? undefined : Math.round(f * 100)
}

/** The text lines, colours applied by `paint` (`used up` and a bar at 90 % or more are `warn`). */
export const usageLines = (
  usage: KimiUsage,
  nowMillis: number,
  paint: { readonly warn: (s: string) => string; readonly dim: (s: string) => string; readonly bold: (s: string) => string }
): ReadonlyArray<string> => {
  if (usage.windows.length === 0) return ["Kimi sent no quota windows for this account."]
  const labelWidth = Math.max(...usage.windows.map((w) => w.label.length))
  const counts = usage.windows.map((w) => (w.used !== undefined && w.limit !== undefined ? `${w.used}/${w.limit}` : "?"))
  const countWidth = Math.max(...counts.map((c) => c.length))
  const lines = usage.windows.map((w, i) => {
    const p = percent(w)
    const hot = isExhausted(w) || (p !== undefined && p >= 90)
    const meter = `${bar(usedFraction(w))} ${p === undefined ? "  ?" : String(p).padStart(3)}%`
    const reset = w.resetsAt === undefined
      ? ""
      : `  resets ${localTime(w.resetsAt)} ${paint.dim(`(in ${countdown(w.resetsAt.getTime() - nowMillis)})`)}`
    const state = isExhausted(w) ? `  ${paint.warn("used up")}` : ""
    return `${paint.bold(w.label.padEnd(labelWidth))}  ${hot ? paint.warn(meter) : meter}  ${counts[i]!.padEnd(countWidth)}${reset}${state}`
  })
  const extra = [
    usage.user?.membershipLevel !== undefined ? `membership ${usage.user.membershipLevel}` : undefined,
    usage.parallelLimit !== undefined ? `${usage.parallelLimit} requests at once` : undefined
  ].filter((s): s is string => s !== undefined)
  return extra.length === 0 ? lines : [...lines, paint.dim(extra.join(", "))]
}

/** The `--json` object: snake_case, times as ISO 8601 and seconds from now. */
export const usageJson = (usage: KimiUsage, nowMillis: number) => ({
  windows: usage.windows.map((w) => ({
    label: w.label,
    kind: w.kind,
    duration_minutes: w.durationMinutes ?? null,
    limit: w.limit ?? null,
    used: w.used ?? null,
    remaining: w.remaining ?? null,
    used_percent: percent(w) ?? null,
    exhausted: isExhausted(w),
    resets_at: w.resetsAt?.toISOString() ?? null,
    resets_in_seconds: w.resetsAt === undefined ? null : Math.max(0, Math.round((w.resetsAt.getTime() - nowMillis) / 1000))
  })),
  user: usage.user ?? null,
  parallel_limit: usage.parallelLimit ?? null
})
