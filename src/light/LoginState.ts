/**
 * The login state as `status` reports it, as plain data and pure functions:
 * the shape every edge reads (`LoginStatus`) and how a stored token's timing
 * is computed from its expiry, its lifetime, the clock and the refresh
 * window. Effect-free: the core's `loginStatus` (src/oauth/LoginStatus.ts)
 * and the CLI's fast `status` (src/cli/FastStatus.ts) both build their
 * status with {@link loginStatusOf}, so they cannot disagree.
 *
 * @since 0.2.0
 */
import type { KimiRegion } from "./Region.js"
import { isDueAt, refreshThresholdSeconds } from "./TokenValidation.js"

/** The stored access token's timing, in seconds. */
export interface TokenTiming {
  /** Epoch seconds. */
  readonly expiresAt: number
  /** Seconds left (negative once expired). */
  readonly remainingSeconds: number
  /** Whether the next `getAccessToken` refreshes first. */
  readonly refreshDue: boolean
  /** Seconds until the token becomes due (0 when it already is). */
  readonly refreshInSeconds: number
  readonly scope: string
}

/** That Kimi refused the stored refresh token: when, and what it said (no secret). */
export interface RefusalSeen {
  /** ISO 8601 time of the refusal. */
  readonly at: string
  /** What the server said, in a few words. */
  readonly detail: string
}

/** Where a login lives and whom it talks to: what {@link loginStatusOf} reads besides the stored login. */
export interface LoginPlaces {
  /** The stored device id; empty until the first login or request creates it (reading the status never does). */
  readonly deviceId: string
  readonly tokenFilePath: string
  readonly deviceIdPath: string
  /** The OAuth host refreshes go to: the one that issued the login unless a host is pinned. */
  readonly oauthHost: string
  /** The API base requests go to, by the same rule. */
  readonly apiBaseUrl: string
  /** In a status, the region of the stored login; given to {@link loginStatusOf}, the configured region. */
  readonly region: KimiRegion
  /** The refresh window in seconds, as configured. */
  readonly refreshWindowSeconds: number
}

/** The login state. `tokens` is undefined when not logged in. */
export interface LoginStatus extends LoginPlaces {
  readonly tokens: TokenTiming | undefined
  /**
   * Set when Kimi refused the last refresh of the stored refresh token (noted
   * by the refresh itself, read here without a request): the login is dead
   * even if the access token has not expired yet.
   */
  readonly refreshRefused?: RefusalSeen | undefined
}

/** What {@link loginStatusOf} needs of a stored login. */
export interface StoredLogin {
  readonly expiresAt: number
  readonly expiresIn: number
  readonly scope: string
  readonly region?: KimiRegion | undefined
}

/** The timing of a stored token at `nowSeconds` with a refresh window of `windowSeconds`. */
export const tokenTiming = (stored: StoredLogin, nowSeconds: number, windowSeconds: number): TokenTiming => {
  const remaining = stored.expiresAt - nowSeconds
  return {
    expiresAt: stored.expiresAt,
    remainingSeconds: remaining,
    refreshDue: isDueAt(stored.expiresAt, stored.expiresIn, nowSeconds, windowSeconds),
    refreshInSeconds: Math.max(0, remaining - refreshThresholdSeconds(stored.expiresIn, windowSeconds)),
    scope: stored.scope
  }
}

/** The status of `stored` (or of no login) at `nowSeconds`: the stored login's region wins over the configured one. */
export const loginStatusOf = (
  places: LoginPlaces,
  stored: StoredLogin | undefined,
  refreshRefused: RefusalSeen | undefined,
  nowSeconds: number
): LoginStatus => ({
  tokens: stored === undefined ? undefined : tokenTiming(stored, nowSeconds, places.refreshWindowSeconds),
  ...places,
  region: stored?.region ?? places.region,
  refreshRefused
})
