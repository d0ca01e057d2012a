// An Effect program: the account's models, the plan's quota, and a streamed chat, all through
// KimiApi (authorized by the KimiHttpClient layer: bearer, identity headers, one 401 refresh).
// Run: npm run build && node examples/effect.mjs [--region global]
import { Console, Effect, Stream } from "effect"
import { KimiApi } from "opencode-kimi-auth/effect"
import { options, prompt, shown } from "./options.mjs"

const program = Effect.gen(function*() {
  const kimi = yield* KimiApi.KimiApi
  const models = yield* kimi.models
  yield* Console.log(`models: ${models.map((m) => m.id).join(", ")}`)
  const usage = yield* kimi.usage.pipe(
    // Counts where Kimi sends them (the old shape), else the share used (the new plans' shape).
    Effect.map((u) => u.windows.map((w) => `${w.label} ${shown(w)}`).join(", ") || "no windows"),
    Effect.catchTag("KimiApiError", (e) => Effect.succeed(`not available (${e.status})`))
  )
  yield* Console.log(`usage: ${usage}`)
  yield* kimi.chatStream({ model: models[0]?.id ?? "kimi-for-coding", messages: [{ role: "user", content: prompt }] }).pipe(
    Stream.runForEach((delta) => Effect.sync(() => process.stdout.write(delta.content ?? "")))
  )
  yield* Console.log("")
})

// Typed failures (NotLoggedInError, QuotaExceededError, …) carry a message that says what to do.
await Effect.runPromise(program.pipe(Effect.provide(KimiApi.KimiApi.layerNode(options)))).catch((e) => {
  console.error(`error: ${e.message}`)
  process.exitCode = 1
})
