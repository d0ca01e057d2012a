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
import { type LoginStatus, loginStatusOf } from "../light/LoginState.js"
import { issuerFor } from "../light/ResolveSettings.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { TokenStore } from "../storage/TokenStore.js"

export type { LoginStatus, TokenTiming } from "../light/LoginState.js"

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
  // The same pure rule as the CLI's fast `status` (src/cli/FastStatus.ts).
  return loginStatusOf(
    {
      // Peek, never create: a status check writes nothing.
      deviceId: identity.peekDeviceId ? identity.peekDeviceId() ?? "" : identity.deviceId,
      tokenFilePath: settings.tokenFilePath,
      deviceIdPath: settings.deviceIdPath,
      ...issuerFor(settings, stored),
      region: settings.region,
      refreshWindowSeconds: Duration.toSeconds(settings.refreshWindow)
    },
    stored,
    refreshRefused,
    now
  )
}).pipe(Effect.withSpan("loginStatus"))
