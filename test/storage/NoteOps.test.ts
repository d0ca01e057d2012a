/**
 * The store's note operations (`NoteOps.ts`) as the token manager uses them,
 * on the TestClock with the memory store (the same rules as the file store):
 * a forced-refresh note from a clock far ahead holds a forced refresh back for
 * one minute of this process's own time, never for good; the memory store
 * records logouts and refusals like the file store.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { TokenManager } from "../../src/tokens/TokenManager.js"
import type { TokenSet } from "../../src/tokens/TokenSet.js"
import { makeScripted, type Step } from "../support/scripted.js"
import { identityLayer } from "../support/settings.js"
import { refreshed, tokenSet } from "../support/tokens.js"

const setup = (steps: ReadonlyArray<Step>) => {
  const scripted = makeScripted(steps)
  const base = Layer.mergeAll(scripted.layer, identityLayer({ requestTimeout: "10 seconds" }))
  const oauth = OAuthClient.layer.pipe(Layer.provide(base))
  // A login issued 10 minutes before the TestClock's start: old, so a first rejection is healed by a refresh.
  const store = TokenStore.layerMemory(tokenSet(0, 300, 900))
  const manager = TokenManager.layer({ unrefTimers: false }).pipe(Layer.provide(Layer.mergeAll(oauth, store, identityLayer())))
  return { requests: scripted.requests, layer: Layer.merge(manager, store) }
}

/** Runs `f` with the memory store, its login `at-0`, and a manager whose token endpoint issues `at-1`. */
const withLogin = (f: (store: TokenStore["Service"], m: TokenManager["Service"], onDisk: TokenSet, requests: ReadonlyArray<unknown>) => Effect.Effect<void, unknown>) => {
  const { requests, layer } = setup([refreshed(1)])
  return Effect.gen(function*() {
    const store = yield* TokenStore
    yield* f(store, yield* TokenManager, (yield* store.load)!, requests)
  }).pipe(Effect.provide(layer))
}
const A_YEAR_MILLIS = 365 * 24 * 3600 * 1000
const accessOf = (t: TokenSet) => Redacted.value(t.accessToken)

describe("a forced-refresh note from another process's clock", () => {
  it.effect("a year ahead, naming the token on disk: declined for one minute of this clock, then refreshed", () =>
    withLogin((store, m, onDisk, requests) =>
      Effect.gen(function*() {
        // Another process, its clock a year ahead, force-refreshed and issued the token on disk.
        yield* store.noteForcedRefresh(onDisk, A_YEAR_MILLIS)
        assert.strictEqual(accessOf(yield* m.invalidate(onDisk.accessToken)), "at-0")
        yield* TestClock.adjust("59 seconds")
        assert.strictEqual(accessOf(yield* m.invalidate(onDisk.accessToken)), "at-0")
        assert.strictEqual(requests.length, 0)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(accessOf(yield* m.invalidate(onDisk.accessToken)), "at-1")
        assert.strictEqual(requests.length, 1)
      })
    ))

  it.effect("naming another token: no bearing on this one, whose first rejection is healed at once", () =>
    withLogin((store, m, onDisk, requests) =>
      Effect.gen(function*() {
        yield* store.noteForcedRefresh(tokenSet(9, 900), A_YEAR_MILLIS)
        assert.strictEqual(accessOf(yield* m.invalidate(onDisk.accessToken)), "at-1")
        assert.strictEqual(requests.length, 1)
      })
    ))
})

describe("the memory store's notes", () => {
  it.effect("clear records the login as logged out; the refusal note concerns its own refresh token only", () =>
    Effect.gen(function*() {
      const store = yield* TokenStore
      const login = (yield* store.load)!
      yield* store.recordRefusal(login, "HTTP 400 invalid_grant")
      assert.strictEqual((yield* store.refusalOf(login))?.detail, "HTTP 400 invalid_grant")
      assert.isUndefined(yield* store.refusalOf(tokenSet(2, 900)))
      assert.isFalse(store.isLoggedOut([login.refreshToken]))
      assert.isTrue(yield* store.clear)
      assert.isTrue(store.isLoggedOut([Redacted.make("x"), login.refreshToken]))
      assert.isTrue(store.isLoggedOut([login.accessToken]))
      assert.isFalse(store.isLoggedOut([Redacted.make("rt-new")]))
    }).pipe(Effect.provide(TokenStore.layerMemory(tokenSet(1, 900)))))
})
