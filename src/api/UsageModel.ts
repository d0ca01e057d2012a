/**
 * The plan's quota as every edge shows it: the windows with their counters and
 * resets. Types only, importing nothing from `effect`, so the package root's
 * declarations (the promise facade's `usage()`) hold without `effect`
 * installed. `Usage.ts` decodes Kimi's answer into these.
 *
 * @since 0.2.0
 */

/** One quota window with its counters. Every counter may be missing. */
export interface QuotaWindow {
  /** `"weekly"` for the plan's window, else the rolling window's length (`"5-hour"`). */
  readonly label: string
  /** `plan`: the `usage` block (weekly); `rolling`: an entry of `limits[]`. */
  readonly kind: "plan" | "rolling"
  /** The rolling window's length in minutes, when Kimi says it. */
  readonly durationMinutes: number | undefined
  readonly limit: number | undefined
  readonly used: number | undefined
  readonly remaining: number | undefined
  /** When the window resets; `undefined` when absent or not a date. */
  readonly resetsAt: Date | undefined
}

/** The account's quota: the plan's window first, then the rolling windows. */
export interface KimiUsage {
  readonly windows: ReadonlyArray<QuotaWindow>
  /** The account, when Kimi sends it (holds no secret). */
  readonly user: { readonly userId?: string; readonly region?: string; readonly membershipLevel?: string } | undefined
  /** How many requests may run at once, when Kimi says it. */
  readonly parallelLimit: number | undefined
  /** The booster wallet as sent (its shape is not documented). */
  readonly boosterWallet: Readonly<Record<string, unknown>> | undefined
}
