// Runs inside a folder with the packed opencode-kimi-auth, `effect` and
// `@effect/platform-node-shared` installed: an Effect application composing the
// layers of `opencode-kimi-auth/effect` with its own copy of effect, and errors
// recognised across the tsc build (./effect) and the bundle (the root, the
// facade). Prints one JSON line.
// argv[2] = a storage folder for the login.
import { Effect, Layer, Redacted } from "effect"
import * as path from "node:path"
import * as Bundled from "opencode-kimi-auth"
import * as Client from "opencode-kimi-auth/client"
import { KimiAuth, KimiAuthError, KimiOAuthClient, Login, TokenManager } from "opencode-kimi-auth/effect"
import { start } from "opencode-kimi-auth/emulator"

const storageDir = process.argv[2]
const emulator = await start({ autoApproveAfterMillis: 200, interval: 1 })
const endpoints = { oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl }
const out = {}
try {
  const program = Effect.gen(function*() {
    yield* Login.login({ onCode: () => Effect.void })
    const manager = yield* TokenManager.TokenManager
    const token = yield* manager.getAccessToken
    return Redacted.value(token).length
  })
  out.tokenLength = await Effect.runPromise(program.pipe(Effect.provide(KimiAuth.layerNode({ ...endpoints, storageDir }))))
  out.layerIsApps = Layer.isLayer(KimiAuth.layerNode({ ...endpoints, storageDir }))

  // The root bundle's error, seen through the Effect API's class, and the other way round.
  const none = { ...endpoints, storageDir: path.join(storageDir, "none") }
  const bundled = new Bundled.KimiOAuthClient(none)
  const fromBundle = await bundled.getValidAccessToken().then(() => undefined, (e) => e)
  await bundled.dispose()
  const effectApi = new KimiOAuthClient(none)
  const fromEffectApi = await effectApi.getValidAccessToken().then(() => undefined, (e) => e)
  await effectApi.dispose()
  out.classesDiffer = Bundled.KimiAuthError !== KimiAuthError
  out.rootIsClient = Bundled.KimiOAuthClient === Client.KimiOAuthClient
  out.bundleErrorSeenByEffectApi = { is: KimiAuthError.is(fromBundle), instanceOf: fromBundle instanceof KimiAuthError, code: fromBundle?.code }
  out.effectApiErrorSeenByBundle = { is: Bundled.KimiAuthError.is(fromEffectApi), instanceOf: fromEffectApi instanceof Bundled.KimiAuthError, code: fromEffectApi?.code }
  out.plainErrorIsNot = KimiAuthError.is(new Error("x")) || new Error("x") instanceof KimiAuthError
} finally {
  await emulator.close()
}
process.stdout.write(JSON.stringify(out) + "\n")
