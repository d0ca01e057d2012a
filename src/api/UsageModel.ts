/**
 * The plan's quota as every edge shows it: the windows with their use and
 * resets, and the booster wallet. Types only, importing nothing from
 * `effect`, so the package root's declarations (the promise facade's
 * `usage()`) hold without `effect` installed. `Usage.ts` decodes Kimi's
 * answer into these.
 *
 * One normalised model for both of Kimi's `/usages` shapes, tagged with the
 * shape it came from ({@link KimiUsage.shape}), rather than a union of the two
 * wire shapes: every edge shows the same things (a window's use, its reset,
 * which one is used up) whichever shape the account answers, so a union would
 * make each edge branch on it and drift. What only one shape has is optional
 * and says so: counts (`limit`, `used`, `remaining`) come only from the old
 * shape, `usedRatio` and `key` only from the new one, `booster` only when Kimi
 * sends a wallet. Callers that care which shape they got read `shape`.
 *
 * @since 0.2.0
 */

/** One quota window. Every measure may be missing. */
export interface QuotaWindow {
  /** `"5-hour"`, `"weekly"`, `"monthly total"`, `"monthly code"`, or a rolling window's length (`"90-minute"`). */
  readonly label: string
  /**
   * `plan`: the weekly window (old shape's `usage`, new shape's `limit_7d`);
   * `rolling`: a rolling window (an entry of `limits[]`, or `limit_5h`);
   * `monthly`: a monthly window (new shape's `limit_month_total` / `limit_month_code`).
   */
  readonly kind: "plan" | "rolling" | "monthly"
  /** The window's length in minutes, when known. */
  readonly durationMinutes: number | undefined
  readonly limit: number | undefined
  readonly used: number | undefined
  readonly remaining: number | undefined
  /** When the window resets; `undefined` when absent or not a date. */
  readonly resetsAt: Date | undefined
  /** The share used, 0..1, as the new shape sends it (`used_ratio`); absent on old-shape windows (see `usedFraction`). */
  readonly usedRatio?: number | undefined
  /** Kimi's name for the window in the new shape (`limit_5h`, `limit_7d`, `limit_month_total`, `limit_month_code`). */
  readonly key?: string | undefined
}

/**
 * The booster wallet (new plans): extra credit beyond the plan, and the
 * monthly cap on what may be charged. Kimi sends amounts in fixed point,
 * 1,000,000 per cent; here they are whole cents (a positive amount under a
 * cent counts as one cent, as kimi-code shows it).
 */
export interface BoosterWallet {
  /** What is left of the booster balance, in cents (`balance.amountLeft`). */
  readonly leftCents: number | undefined
  /** The booster balance bought, in cents (`balance.amount`). */
  readonly totalCents: number | undefined
  /** Whether a monthly charge limit is set (`monthlyChargeLimitEnabled`). */
  readonly monthlyChargeLimitEnabled: boolean | undefined
  /** The monthly charge limit, in cents (`monthlyChargeLimit.priceInCents`). */
  readonly monthlyChargeLimitCents: number | undefined
  /** What was charged this month, in cents (`monthlyUsed.priceInCents`). */
  readonly monthlyUsedCents: number | undefined
  /** The currency of the charge limit (`USD`), when sent. */
  readonly currency: string | undefined
}

/** The account's quota: the windows (old shape: the weekly window first; new shape: 5-hour, weekly, monthly), and more. */
export interface KimiUsage {
  readonly windows: ReadonlyArray<QuotaWindow>
  /** The account, when Kimi sends it (holds no secret). */
  readonly user: { readonly userId?: string; readonly region?: string; readonly membershipLevel?: string } | undefined
  /** How many requests may run at once, when Kimi says it. */
  readonly parallelLimit: number | undefined
  /** The booster wallet as sent (see {@link KimiUsage.booster} for it read). */
  readonly boosterWallet: Readonly<Record<string, unknown>> | undefined
  /**
   * Which shape Kimi answered: `"new"` (the new plans' `usages.{limit_5h, …}`,
   * since September 2026), `"old"` (`usage` + `limits[]`), or `undefined` when
   * the answer carried neither.
   */
  readonly shape?: "new" | "old" | undefined
  /** The booster wallet, read; `undefined` when Kimi sent none. */
  readonly booster?: BoosterWallet | undefined
}
