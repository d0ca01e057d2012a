/** Resolved settings for unit tests: no environment, a fake https host. */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DeviceIdentity } from "../../src/oauth/DeviceIdentity.js"
import { type KimiAuthOptions, KimiAuthConfig, resolve } from "../../src/config/KimiAuthConfig.js"

/** Settings resolved from options only. */
export const testSettings = (options: KimiAuthOptions = {}) =>
  Effect.runSync(
    resolve({ oauthHost: "https://auth.test", apiBaseUrl: "https://api.test/coding/v1", storageDir: "/nonexistent/kimi-test", ...options })
  )

/** Config plus a fixed device identity. */
export const identityLayer = (options: KimiAuthOptions = {}, deviceId = "00000000-0000-4000-8000-000000000001") =>
  DeviceIdentity.layerFixed(deviceId).pipe(Layer.provideMerge(KimiAuthConfig.layerSettings(testSettings(options))))
