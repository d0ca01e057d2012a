// Runs inside a folder with the packed opencode-kimi-auth, `effect` and
// `@effect/platform-node-shared` installed: an Effect application composing the
// package's layers with its own copy of effect, and errors recognised across
// the tsc build (the root) and the bundle (./client). Prints one JSON line.
// argv[2] = a storage folder for the login.
import { Effect, Layer, Redacted } from "effect"
import * as path from "node:path"
import { KimiAuth, KimiAuthError, KimiOAuthClient, Login, TokenManager } from "opencode-kimi-auth"
import * as Bundled from "opencode-kimi-auth/client"
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

  // The bundle's error, seen through the root's class, and the other way round.
  const none = { ...endpoints, storageDir: path.join(storageDir, "none") }
  const bundled = new Bundled.KimiOAuthClient(none)
  const fromBundle = await bundled.getValidAccessToken().then(() => undefined, (e) => e)
  await bundled.dispose()
  const root = new KimiOAuthClient(none)
  const fromRoot = await root.getValidAccessToken().then(() => undefined, (e) => e)
  await root.dispose()
  out.classesDiffer = Bundled.KimiAuthError !== KimiAuthError
  out.bundleErrorSeenByRoot = { is: KimiAuthError.is(fromBundle), instanceOf: fromBundle instanceof KimiAuthError, code: fromBundle?.code }
  out.rootErrorSeenByBundle = { is: Bundled.KimiAuthError.is(fromRoot), instanceOf: fromRoot instanceof Bundled.KimiAuthError, code: fromRoot?.code }
  out.plainErrorIsNot = KimiAuthError.is(new Error("x")) || new Error("x") instanceof KimiAuthError
} finally {
  await emulator.close()
}
process.stdout.write(JSON.stringify(out) + "\n")
