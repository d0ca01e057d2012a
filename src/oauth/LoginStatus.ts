/**
 * The state of the stored login, computed once for every edge (the CLI's
 * `status`, the facade's `status()`): whether there are tokens, when the
 * access token expires, when it will be refreshed, and where things live.
 * Holds no secret.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { DeviceIdentity } from "./DeviceIdentity.js"
import type { CorruptTokenFileError, TokenStoreError } from "../Errors.js"
import type { KimiRegion } from "../light/Region.js"
import { issuerFor } from "../light/ResolveSettings.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { isDue, refreshThresholdOf } from "../tokens/TokenManagerDecisions.js"
import type { RefreshRefusal } from "../storage/Notes.js"
import { TokenStore } from "../storage/TokenStore.js"

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

/** The login state. `tokens` is undefined when not logged in. */
export interface LoginStatus {
  readonly tokens: TokenTiming | undefined
  /** The stored device id; empty until the first login or request creates it (reading the status never does). */
  readonly deviceId: string
  readonly tokenFilePath: string
  readonly deviceIdPath: string
  /** The OAuth host refreshes go to: the one that issued the login unless a host is pinned. */
  readonly oauthHost: string
  /** The API base requests go to, by the same rule. */
  readonly apiBaseUrl: string
  /** The region of the stored login (the configured region when not logged in or not recorded). */
  readonly region: KimiRegion
  /** The refresh window in seconds, as configured. */
  readonly refreshWindowSeconds: number
  /**
   * Set when Kimi refused the last refresh of the stored refresh token (noted
   * by the refresh itself, read here without a request): the login is dead
   * even if the access token has not expired yet.
   */
  readonly refreshRefused?: RefreshRefusal | undefined
}

/**
 * Reads the stored login, writing nothing (no `device_id` is created). A
 * corrupt file is moved aside and reported, as by every load.
 */
export const loginStatus: Effect.Effect<
  LoginStatus,
  TokenStoreError | CorruptTokenFileError,
  KimiAuthConfig | DeviceIdentity | TokenStore
> = Effect.gen(function*() {
  const settings = yield* KimiAuthConfig
  const identity = yield* DeviceIdentity
  const store = yield* TokenStore
  const stored = yield* store.load
  const refreshRefused = stored !== undefined ? yield* store.refusalOf(stored) : undefined
  const now = (yield* Clock.currentTimeMillis) / 1000
  const windowSeconds = Duration.toSeconds(settings.refreshWindow)
  const tokens = stored === undefined ? undefined : {
    expiresAt: stored.expiresAt,
    remainingSeconds: stored.remainingSeconds(now),
    refreshDue: isDue(stored, now, windowSeconds),
    refreshInSeconds: Math.max(0, stored.remainingSeconds(now) - refreshThresholdOf(stored, windowSeconds)),
    scope: stored.scope
  }
  return {
    tokens,
    // Peek, never create: a status check writes nothing.
    deviceId: identity.peekDeviceId ? identity.peekDeviceId() ?? "" : identity.deviceId,
    tokenFilePath: settings.tokenFilePath,
    deviceIdPath: settings.deviceIdPath,
    ...issuerFor(settings, stored),
    region: stored?.region ?? settings.region,
    refreshWindowSeconds: windowSeconds,
    refreshRefused
  }
}).pipe(Effect.withSpan("loginStatus"))
