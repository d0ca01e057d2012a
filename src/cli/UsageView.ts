/**
 * How `kimi-auth usage` shows the plan's quota: one line per window with a
 * percentage bar, used/limit when Kimi sends counts (the old shape; the new
 * plans send only a share), and the reset as a local time and a countdown;
 * then the booster wallet (balance left of total, the monthly charge limit
 * against what was charged); or one JSON object for scripts. Pure: the time
 * is passed in.
 *
 * @since 0.2.0
 */
import {
  type BoosterWallet,
  countdown,
  isExhausted,
  type KimiUsage,
  localTime,
  money,
  type QuotaWindow,
  usedFraction
} from "../api/Usage.js"

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

/** The booster wallet's lines: the balance left of what was bought, and the monthly charge limit against its use. */
export const boosterLines = (b: BoosterWallet): ReadonlyArray<string> => {
  const cur = b.currency
  const balance = b.leftCents === undefined
    ? undefined
    : `booster wallet: ${money(b.leftCents, cur)} left${b.totalCents === undefined ? "" : ` of ${money(b.totalCents, cur)}`}`
  const used = b.monthlyUsedCents === undefined ? undefined : money(b.monthlyUsedCents, cur)
  const charge = b.monthlyChargeLimitEnabled === false
    ? `monthly charge limit: off${used === undefined ? "" : ` (${used} charged this month)`}`
    : b.monthlyChargeLimitCents !== undefined
    ? `monthly charge limit: ${used ?? "?"} of ${money(b.monthlyChargeLimitCents, cur)} used`
    : used === undefined
    ? undefined
    : `monthly charge: ${used} this month`
  return [balance, charge].filter((s): s is string => s !== undefined)
}

type Paint = { readonly warn: (s: string) => string; readonly dim: (s: string) => string; readonly bold: (s: string) => string }

/** One line per window: label, bar and percentage, counts when any window has them, reset, `used up`. */
const windowLines = (windows: ReadonlyArray<QuotaWindow>, nowMillis: number, paint: Paint): Array<string> => {
  const labelWidth = Math.max(...windows.map((w) => w.label.length))
  const counts = windows.map((w) => (w.used !== undefined && w.limit !== undefined ? `${w.used}/${w.limit}` : "?"))
  // The new plans send a share, no counts: the column is left out rather than filled with `?`.
  const showCounts = windows.some((w) => w.used !== undefined && w.limit !== undefined)
  const countWidth = Math.max(...counts.map((c) => c.length))
  return windows.map((w, i) => {
    const p = percent(w)
    const hot = isExhausted(w) || (p !== undefined && p >= 90)
    const meter = `${bar(usedFraction(w))} ${p === undefined ? "  ?" : String(p).padStart(3)}%`
    const reset = w.resetsAt === undefined
      ? ""
      : `  resets ${localTime(w.resetsAt)} ${paint.dim(`(in ${countdown(w.resetsAt.getTime() - nowMillis)})`)}`
    const state = isExhausted(w) ? `  ${paint.warn("used up")}` : ""
    const count = showCounts ? `  ${counts[i]!.padEnd(countWidth)}` : ""
    return `${paint.bold(w.label.padEnd(labelWidth))}  ${hot ? paint.warn(meter) : meter}${count}${reset}${state}`
  })
}

/** The text lines, colours applied by `paint` (`used up` and a bar at 90 % or more are `warn`). */
export const usageLines = (usage: KimiUsage, nowMillis: number, paint: Paint): ReadonlyArray<string> => {
  const booster = usage.booster === undefined ? [] : boosterLines(usage.booster)
  if (usage.windows.length === 0 && booster.length === 0) return ["Kimi sent no quota windows for this account."]
  const lines = usage.windows.length === 0 ? [] : windowLines(usage.windows, nowMillis, paint)
  const extra = [
    usage.user?.membershipLevel !== undefined ? `membership ${usage.user.membershipLevel}` : undefined,
    usage.parallelLimit !== undefined ? `${usage.parallelLimit} requests at once` : undefined
  ].filter((s): s is string => s !== undefined)
  return [...lines, ...booster, ...(extra.length === 0 ? [] : [paint.dim(extra.join(", "))])]
}

/** The `--json` object: snake_case, times as ISO 8601 and seconds from now, money in cents. */
export const usageJson = (usage: KimiUsage, nowMillis: number) => ({
  shape: usage.shape ?? null,
  windows: usage.windows.map((w) => ({
    label: w.label,
    kind: w.kind,
    key: w.key ?? null,
    used_ratio: usedFraction(w) ?? null,
    duration_minutes: w.durationMinutes ?? null,
    limit: w.limit ?? null,
    used: w.used ?? null,
    remaining: w.remaining ?? null,
    used_percent: percent(w) ?? null,
    exhausted: isExhausted(w),
    resets_at: w.resetsAt?.toISOString() ?? null,
    resets_in_seconds: w.resetsAt === undefined ? null : Math.max(0, Math.round((w.resetsAt.getTime() - nowMillis) / 1000))
  })),
  booster: usage.booster === undefined ? null : {
    left_cents: usage.booster.leftCents ?? null,
    total_cents: usage.booster.totalCents ?? null,
    monthly_charge_limit_enabled: usage.booster.monthlyChargeLimitEnabled ?? null,
    monthly_charge_limit_cents: usage.booster.monthlyChargeLimitCents ?? null,
    monthly_used_cents: usage.booster.monthlyUsedCents ?? null,
    currency: usage.booster.currency ?? null
  },
  user: usage.user ?? null,
  parallel_limit: usage.parallelLimit ?? null
})
