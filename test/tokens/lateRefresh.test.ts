/**
 * A refresh that answers late, on the TestClock (issue 22): a token endpoint
 * that rotates on receipt and answers after the 30 s request timeout. The
 * answer is the only copy of the new refresh token, so it is awaited for
 * `refreshAnswerTimeout` (5 minutes), the still-valid token is served
 * meanwhile, and a refresh whose outcome stays unknown is never replayed.
 * Also: a refresh token Kimi refused is never sent again in the process.
 *
 * Before: the holder gave up at 30 s and sent the spent refresh token again
 * (twice more with the default attempts); callers queued behind it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { TestClock } from "effect/testing"
import { lockWaitFor } from "../../src/config/KimiAuthConfig.js"
import type { KimiAuthOptions } from "../../src/config/KimiAuthConfig.js"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { TokenManager, type TokenManagerOptions } from "../../src/tokens/TokenManager.js"
import { HeldBackRefreshTokens } from "../../src/tokens/TokenManagerDecisions.js"
import type { TokenSet } from "../../src/tokens/TokenSet.js"
import { makeMemory, TokenStore, type TokenStoreShape } from "../../src/storage/TokenStore.js"
import { hang, late, makeScripted, oauthError, type Step } from "../support/scripted.js"
import { refreshed, tokenSet } from "../support/tokens.js"
import { identityLayer, testSettings } from "../support/settings.js"

/** The manager over `store`, the OAuth client answering by `steps`, with the default timings (30 s request, 5 min answer). */
const setup = (
  store: TokenStoreShape,
  steps: ReadonlyArray<Step>,
  options: TokenManagerOptions = {},
  settings: KimiAuthOptions = {}
) => {
  const scripted = makeScripted(steps)
  const config = identityLayer(settings)
  const oauth = OAuthClient.layer.pipe(Layer.provide(Layer.mergeAll(scripted.layer, config)))
  const manager = TokenManager.layer({ unrefTimers: false, ...options }).pipe(
    Layer.provide(Layer.mergeAll(oauth, Layer.succeed(TokenStore, store), config))
  )
  return { requests: scripted.requests, layer: manager }
}

const stored = (store: TokenStoreShape) => Effect.map(store.load, (t) => (t ? Redacted.value(t.refreshToken) : undefined))
const markerLeft = (store: TokenStoreShape) => Effect.scoped(Effect.map(store.prepareSave!, (p) => p.interrupted !== undefined))
const memoryStore = (initial: TokenSet) => makeMemory(initial)

describe("the answer bound", () => {
  it("refreshAnswerTimeout defaults to 5 minutes, is an option, and lock waiters outwait two of it", () => {
    assert.strictEqual(Duration.toMillis(testSettings().refreshAnswerTimeout), 300_000)
    assert.strictEqual(Duration.toMillis(testSettings({ refreshAnswerTimeout: "2 minutes" }).refreshAnswerTimeout), 120_000)
    // Never less than the request timeout unless set.
    assert.strictEqual(Duration.toMillis(testSettings({ requestTimeout: "10 minutes" }).refreshAnswerTimeout), 600_000)
    assert.strictEqual(Duration.toMillis(lockWaitFor(testSettings())), 605_000)
  })
})

describe("a refresh answered after 35 s", () => {
  it.effect("an expired token: the caller waits for the answer; one request, the rotated token stored", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      // The second step is what a replay of the spent rt-0 would get.
      const { requests, layer } = setup(store, [late(35_000, refreshed(1)), oauthError("invalid_grant")])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const call = yield* Effect.forkChild(m.getAccessToken)
        yield* TestClock.adjust("34 seconds")
        assert.isUndefined(call.pollUnsafe(), "it gave up before the answer came")
        yield* TestClock.adjust("1 second")
        assert.strictEqual(Redacted.value(yield* Fiber.join(call)), "at-1")
        assert.strictEqual(requests.length, 1)
        assert.strictEqual(yield* stored(store), "rt-1")
        assert.isFalse(yield* markerLeft(store))
      }).pipe(Effect.provide(layer))
    }))

  it.effect("a due, still-valid token: served after at most the request timeout, others at once; the answer saved at 35 s", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(store, [late(35_000, refreshed(1)), oauthError("invalid_grant")])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("500 seconds") // due (400 s left), valid
        const first = yield* Effect.forkChild(m.getAccessToken)
        yield* TestClock.adjust("1 second")
        // Another caller meanwhile is served the valid token at once, and sends nothing.
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-0")
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual(Redacted.value(yield* Fiber.join(first)), "at-0")
        assert.strictEqual(requests.length, 1)
        assert.strictEqual(yield* stored(store), "rt-0")
        yield* TestClock.adjust("6 seconds")
        assert.strictEqual(yield* stored(store), "rt-1")
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("a caller interrupted while the refresh is on the wire waits for the answer (at most the request timeout) so it is saved", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(store, [late(20_000, refreshed(1))])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const call = yield* Effect.forkChild(m.getAccessToken)
        yield* TestClock.adjust("1 second")
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(call))
        yield* TestClock.adjust("18 seconds")
        assert.isUndefined(interrupting.pollUnsafe(), "the interruption did not wait for the answer")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(interrupting)
        assert.strictEqual(yield* stored(store), "rt-1")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))
})

describe("a refresh that never answers", () => {
  it.effect("fails after the 5-minute bound saying its outcome is unknown; the marker stays; it is not sent again", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(store, [hang])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const call = yield* Effect.forkChild(Effect.flip(m.getAccessToken))
        yield* TestClock.adjust("299 seconds")
        assert.isUndefined(call.pollUnsafe(), "it gave up before the long bound")
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(call)
        assert.strictEqual(error._tag, "NetworkError")
        assert.strictEqual((error as { reason?: string }).reason, "outcome-unknown")
        assert.include(error.message, "did not answer within 300 s. The token refresh was sent, so its outcome is unknown")
        assert.include(error.message, "kimi-auth token")
        assert.strictEqual(requests.length, 1, "the spent refresh token was replayed")
        assert.isTrue(yield* markerLeft(store))
        assert.strictEqual(yield* stored(store), "rt-0")
        // A later call in this process does not send it blindly either.
        const again = yield* Effect.flip(m.getAccessToken)
        assert.include(again.message, "outcome is unknown")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("the bound is the refreshAnswerTimeout option", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(store, [hang], {}, { refreshAnswerTimeout: "2 minutes" })
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        const call = yield* Effect.forkChild(Effect.flip(m.getAccessToken))
        yield* TestClock.adjust("120 seconds")
        assert.include((yield* Fiber.join(call)).message, "did not answer within 120 s")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))
})

describe("a refresh token Kimi refused is not sent again in the process", () => {
  it.effect("after invalid_grant, later calls fail at once without a request", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(store, [oauthError("invalid_grant")])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        for (let i = 0; i < 3; i++) {
          const error = yield* Effect.flip(m.getAccessToken)
          assert.strictEqual(error._tag, "NotLoggedInError")
          assert.include(error.message, "expired or was revoked")
        }
        yield* Effect.flip(m.invalidate(Redacted.make("at-0")))
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("a manager rebuilt with the same HeldBackRefreshTokens (OpenCode's plugin runtime) does not send it either; a new login does", () =>
    Effect.gen(function*() {
      const store = yield* memoryStore(tokenSet(0, 900))
      const spent = new HeldBackRefreshTokens()
      const first = setup(store, [oauthError("invalid_grant")], { heldBackRefreshTokens: spent })
      yield* TestClock.adjust("1000 seconds")
      yield* Effect.flip(Effect.flatMap(TokenManager, (m) => m.getAccessToken)).pipe(Effect.provide(first.layer))
      const second = setup(store, [refreshed(5)], { heldBackRefreshTokens: spent })
      const error = yield* Effect.flip(Effect.flatMap(TokenManager, (m) => m.getAccessToken)).pipe(Effect.provide(second.layer))
      assert.strictEqual(error._tag, "NotLoggedInError")
      assert.strictEqual(first.requests.length + second.requests.length, 1)
      // A new login (another refresh token) is refreshed as usual.
      yield* store.save(tokenSet(7, 900))
      assert.strictEqual(
        Redacted.value(yield* Effect.flatMap(TokenManager, (m) => m.getAccessToken).pipe(Effect.provide(second.layer))),
        "at-5"
      )
    }))
})

describe("another process has a refresh on the wire", () => {
  /** The memory store, with a "refresh in flight" marker of another process written at `startedAtMillis` (test clock). */
  const withForeignMarker = (store: TokenStoreShape, startedAtMillis: number): TokenStoreShape => ({
    ...store,
    readInFlight: Effect.succeed({ pid: 999_999, hostname: "elsewhere", startedAt: new Date(startedAtMillis).toISOString() })
  })

  it.effect("a proactive call serves its valid token at once instead of queueing behind it; a leftover marker does not stop a refresh", () =>
    Effect.gen(function*() {
      const memory = yield* memoryStore(tokenSet(0, 900))
      // The other process sent its refresh at 480 s (test clock); the answer bound is 5 minutes.
      const { requests, layer } = setup(withForeignMarker(memory, 480_000), [refreshed(1)])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("500 seconds") // due, valid
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-0")
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-0")
        assert.strictEqual(requests.length, 0)
        // At 781 s the marker is older than the bound: a leftover, and the refresh goes ahead.
        yield* TestClock.adjust("277 seconds")
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))

  it.effect("an expired token waits on the lock instead (it cannot be served)", () =>
    Effect.gen(function*() {
      const memory = yield* memoryStore(tokenSet(0, 900))
      const { requests, layer } = setup(withForeignMarker(memory, 990_000), [refreshed(1)])
      yield* Effect.gen(function*() {
        const m = yield* TokenManager
        yield* TestClock.adjust("1000 seconds")
        assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
        assert.strictEqual(requests.length, 1)
      }).pipe(Effect.provide(layer))
    }))
})
