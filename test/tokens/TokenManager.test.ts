import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Scope from "effect/Scope"
import { TestClock } from "effect/testing"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { TokenManager, type TokenManagerOptions } from "../../src/tokens/TokenManager.js"
import { isDue, refreshThresholdOf as refreshThresholdSeconds } from "../../src/tokens/TokenManagerDecisions.js"
import type { TokenSet } from "../../src/tokens/TokenSet.js"
import { TokenStore } from "../../src/storage/TokenStore.js"
import { json, makeScripted, network, oauthError, type Recorded, type Step } from "../support/scripted.js"
import { refreshed, tokenSet } from "../support/tokens.js"
import { identityLayer } from "../support/settings.js"



const setup = (
  initial: TokenSet | undefined,
  steps: ReadonlyArray<Step> | ((req: Recorded, i: number) => Step),
  options: TokenManagerOptions = { unrefTimers: false },
  background = false
) => {
  const scripted = makeScripted(steps)
  const base = Layer.mergeAll(scripted.layer, identityLayer({ requestTimeout: "10 seconds" }))
  const oauth = OAuthClient.layer.pipe(Layer.provide(base))
  const store = TokenStore.layerMemory(initial)
  const manager = (background ? TokenManager.layerWithBackgroundRefresh(options) : TokenManager.layer(options)).pipe(
    Layer.provide(Layer.mergeAll(oauth, store, identityLayer()))
  )
  return { requests: scripted.requests, layer: Layer.merge(manager, store) }
}

const storedRefresh = Effect.flatMap(TokenStore, (s) => s.load).pipe(
  Effect.map((t) => (t ? Redacted.value(t.refreshToken) : undefined))
)

describe("refresh window", () => {
  it("a 900 s token is due at half its life, a fresh short-lived token is never due", () => {
    const t = tokenSet(0, 900)
    assert.strictEqual(refreshThresholdSeconds(t, 300), 450)
    assert.isFalse(isDue(t, 449, 300))
    assert.isTrue(isDue(t, 450, 300))
    const short = tokenSet(0, 60, 60)
    assert.isFalse(isDue(short, 0, 300))
    assert.isTrue(isDue(short, 16, 300))
    const long = tokenSet(0, 86_400, 86_400)
    assert.strictEqual(refreshThresholdSeconds(long, 300), 43_200)
  })
})

describe("TokenManager", () => {
  it.effect("a token outside the window is served without any request", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("400 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-0")
      assert.strictEqual(requests.length, 0)
    }).pipe(Effect.provide(layer))
  })

  it.effect("inside the window: one refresh with the stored refresh token, rotation stored", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("451 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
      assert.strictEqual(requests.length, 1)
      assert.deepStrictEqual(requests[0]!.form, {
        client_id: "17e5f671-d194-4dfb-9706-5516cb48c098",
        grant_type: "refresh_token",
        refresh_token: "rt-0"
      })
      assert.strictEqual(yield* storedRefresh, "rt-1")
      const stored = yield* Effect.flatMap(TokenStore, (s) => s.load)
      assert.strictEqual(stored!.expiresAt, 451 + 900)
      // and the new token is now served without another request
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
      assert.strictEqual(requests.length, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("1,000 concurrent callers with an expired token cause exactly one refresh", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("2000 seconds")
      const tokens = yield* Effect.all(Array.from({ length: 1000 }, () => m.getAccessToken), { concurrency: "unbounded" })
      assert.strictEqual(requests.length, 1)
      assert.isTrue(tokens.every((t) => Redacted.value(t) === "at-1"))
    }).pipe(Effect.provide(layer))
  })

  it.effect("a refresh response without refresh_token keeps the stored one", () => {
    const { layer } = setup(tokenSet(0, 900), [json(200, { access_token: "at-1", expires_in: 900 })])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
      assert.strictEqual(yield* storedRefresh, "rt-0")
    }).pipe(Effect.provide(layer))
  })

  it.effect("invalid_grant: NotLoggedInError naming the login command; the stored tokens are not deleted", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [oauthError("invalid_grant")])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      const error = yield* Effect.flip(m.getAccessToken)
      assert.strictEqual(error._tag, "NotLoggedInError")
      assert.match(error.message, /kimi-auth login/)
      assert.match(error.message, /opencode auth login -p kimi/)
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(yield* storedRefresh, "rt-0")
    }).pipe(Effect.provide(layer))
  })

  it.effect("invalid_grant after a concurrent rotation by another tool: the re-read tokens are used", () => {
    let store: typeof TokenStore.Service | undefined
    const { requests, layer } = setup(tokenSet(0, 900), (_req, i) => {
      if (i === 0) {
        // Another tool (not taking our lock) rotates the tokens while our request is in flight.
        Effect.runSync(store!.save(tokenSet(5, 1000 + 900)))
        return oauthError("invalid_grant")
      }
      return refreshed(9)
    })
    return Effect.gen(function*() {
      store = yield* TokenStore
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-5")
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(yield* storedRefresh, "rt-5")
    }).pipe(Effect.provide(layer))
  })

  it.effect("401 from the token endpoint without a body also means the login is dead", () => {
    const { layer } = setup(tokenSet(0, 900), [{ status: 401, body: "" }])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      const error = yield* Effect.flip(m.getAccessToken)
      assert.strictEqual(error._tag, "NotLoggedInError")
    }).pipe(Effect.provide(layer))
  })

  it.effect("no stored tokens: NotLoggedInError", () => {
    const { layer } = setup(undefined, [refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      const error = yield* Effect.flip(m.getAccessToken)
      assert.strictEqual(error._tag, "NotLoggedInError")
      if (error._tag === "NotLoggedInError") assert.strictEqual(error.reason, "no-tokens")
    }).pipe(Effect.provide(layer))
  })

  it.effect("503, network error, then success: jittered exponential backoff, tokens untouched meanwhile", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [
      { status: 503, body: "<html>Bad gateway</html>" },
      network,
      refreshed(1)
    ])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      const fiber = yield* Effect.forkChild(m.getAccessToken)
      yield* TestClock.adjust("300 millis")
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(yield* storedRefresh, "rt-0")
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(Redacted.value(yield* Fiber.join(fiber)), "at-1")
      const at = requests.map((r) => r.at - 1_000_000)
      assert.strictEqual(at[0], 0)
      const gap1 = at[1]! - at[0]!
      const gap2 = at[2]! - at[1]!
      assert.isTrue(gap1 >= 400 && gap1 <= 600, `first backoff ${gap1}`)
      assert.isTrue(gap2 >= 800 && gap2 <= 1200, `second backoff ${gap2}`)
      assert.strictEqual(yield* storedRefresh, "rt-1")
    }).pipe(Effect.provide(layer))
  })

  it.effect("transient faults: a still-valid token is served after one try; an expired one retries, then fails typed", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [network])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("600 seconds")
      const fiber = yield* Effect.forkChild(m.getAccessToken)
      yield* TestClock.adjust("60 seconds")
      assert.strictEqual(Redacted.value(yield* Fiber.join(fiber)), "at-0")
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("400 seconds")
      const fiber2 = yield* Effect.forkChild(Effect.flip(m.getAccessToken))
      yield* TestClock.adjust("60 seconds")
      const error = yield* Fiber.join(fiber2)
      assert.strictEqual(error._tag, "NetworkError")
      assert.strictEqual(requests.length, 6)
      assert.strictEqual(yield* storedRefresh, "rt-0")
    }).pipe(Effect.provide(layer))
  })

  it.effect("invalidate(rejected) forces one refresh; a second caller with the same rejected token reuses it", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [refreshed(1), refreshed(2)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      const first = yield* m.getAccessToken
      const [a, b] = yield* Effect.all([m.invalidate(first), m.invalidate(first)], { concurrency: "unbounded" })
      assert.strictEqual(Redacted.value(a.accessToken), "at-1")
      assert.strictEqual(Redacted.value(b.accessToken), "at-1")
      assert.strictEqual(requests.length, 1)
      // a stale 401 for a token that was already replaced causes no refresh
      yield* m.invalidate(Redacted.make("at-old"))
      assert.strictEqual(requests.length, 1)
    }).pipe(Effect.provide(layer))
  })

  it.effect("an API that rejects the token a forced refresh just issued: invalidate hands it back, no refresh, for a minute", () => {
    // A fresh login (issued now): its first rejection is healed by a refresh (Kimi may have revoked it once).
    const { requests, layer } = setup(tokenSet(0, 900), [refreshed(1), refreshed(2)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      const first = yield* m.getAccessToken
      const second = (yield* m.invalidate(first)).accessToken
      assert.strictEqual(Redacted.value(second), "at-1")
      // at-1 was issued just now: a rejection of it refreshes nothing and hands at-1 back (the caller reports it).
      for (let i = 0; i < 5; i++) assert.strictEqual(Redacted.value((yield* m.invalidate(second)).accessToken), "at-1")
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(Redacted.value((yield* m.invalidate(second)).accessToken), "at-1")
      assert.strictEqual(requests.length, 1)
      // A minute after its issue, a rejection refreshes again: one more, bounded.
      yield* TestClock.adjust("1 second")
      assert.strictEqual(Redacted.value((yield* m.invalidate(second)).accessToken), "at-2")
      assert.strictEqual(requests.length, 2)
    }).pipe(Effect.provide(layer))
  })

  it.effect("background refresh keeps the token fresh with no caller, and stops when its scope closes", () => {
    const { requests, layer } = setup(tokenSet(0, 900), (_r, i) => refreshed(i + 1), { unrefTimers: false }, true)
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(layer, scope)
      const store = Context.get(context, TokenStore)
      yield* TestClock.adjust("449 seconds")
      assert.strictEqual(requests.length, 0)
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(Redacted.value((yield* store.load)!.refreshToken), "rt-1")
      // the next refresh comes at half of the new token's life
      yield* TestClock.adjust("455 seconds")
      assert.strictEqual(requests.length, 2)
      yield* Scope.close(scope, Exit.void)
      yield* TestClock.adjust("2 hours")
      assert.strictEqual(requests.length, 2)
    })
  })
})

const retryAfter = (seconds: number, status = 429): Step => ({
  status,
  body: JSON.stringify({ error: "rate_limited" }),
  headers: { "content-type": "application/json", "retry-after": String(seconds) }
})

/** Lets forked fibers run without moving the TestClock: anything that sleeps stays pending. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

describe("TokenManager: Retry-After and transient faults", () => {
  it.effect("429 Retry-After: 60 on a proactive refresh: the valid token is served at once, retried after the delay", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [retryAfter(60), refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("451 seconds")
      const fiber = yield* Effect.forkChild(m.getAccessToken)
      yield* settle
      const exit = fiber.pollUnsafe()
      assert.isDefined(exit, "the still-valid token was not served at once")
      assert.strictEqual(Redacted.value(yield* Fiber.join(fiber)), "at-0")
      assert.strictEqual(requests.length, 1)
      // Within the server's delay no call makes a request.
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-0")
      assert.strictEqual(requests.length, 1)
      // After it, the next call refreshes.
      yield* TestClock.adjust("31 seconds")
      assert.strictEqual(Redacted.value(yield* m.getAccessToken), "at-1")
      assert.strictEqual(requests.length, 2)
      assert.strictEqual(yield* storedRefresh, "rt-1")
    }).pipe(Effect.provide(layer))
  })

  it.effect("Retry-After: 3600 on an expired token fails at once, naming the delay", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [retryAfter(3600)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      const fiber = yield* Effect.forkChild(Effect.flip(m.getAccessToken))
      yield* settle
      assert.isDefined(fiber.pollUnsafe(), "it waited for the server's delay")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "ServerError")
      assert.include(error.message, "Kimi asked to wait 3600 s")
      assert.strictEqual(requests.length, 1)
      assert.strictEqual(yield* storedRefresh, "rt-0")
    }).pipe(Effect.provide(layer))
  })

  it.effect("the total time one refresh spends retrying is capped by maxRetryTime", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [retryAfter(7, 503)], {
      unrefTimers: false,
      refreshAttempts: 100,
      maxRetryTime: "20 seconds"
    })
    return Effect.gen(function*() {
      const m = yield* TokenManager
      yield* TestClock.adjust("1000 seconds")
      const fiber = yield* Effect.forkChild(Effect.flip(m.getAccessToken))
      yield* TestClock.adjust("15 seconds")
      assert.isDefined(fiber.pollUnsafe(), "still retrying past the budget")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "ServerError")
      // at 0, 7 and 14 s; a fourth try at 21 s would end past the 20 s budget.
      assert.deepStrictEqual(requests.map((r) => r.at - 1_000_000), [0, 7000, 14_000])
    }).pipe(Effect.provide(layer))
  })

  it.effect("no wait happens while the cross-process lock is held: others take it during the backoff", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [retryAfter(5, 503), refreshed(1)])
    return Effect.gen(function*() {
      const m = yield* TokenManager
      const store = yield* TokenStore
      yield* TestClock.adjust("1000 seconds")
      const refresher = yield* Effect.forkChild(m.getAccessToken)
      yield* settle
      assert.strictEqual(requests.length, 1)
      // The refresher now waits 5 s: the lock must be free for anyone else.
      const other = yield* Effect.forkChild(store.withLock(Effect.succeed("got it")))
      yield* settle
      assert.isDefined(other.pollUnsafe(), "the lock was held during the Retry-After wait")
      assert.strictEqual(yield* Fiber.join(other), "got it")
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(Redacted.value(yield* Fiber.join(refresher)), "at-1")
      assert.strictEqual(requests.length, 2)
      // The second try re-read the file and used the refresh token stored there.
      assert.strictEqual(requests[1]!.form["refresh_token"], "rt-0")
    }).pipe(Effect.provide(layer))
  })

  it.effect("the background refresher waits out the backoff instead of polling every second", () => {
    const { requests, layer } = setup(tokenSet(0, 900), [retryAfter(120), refreshed(1)], { unrefTimers: false }, true)
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* Layer.buildWithScope(layer, scope)
      yield* TestClock.adjust("451 seconds")
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("100 seconds")
      assert.strictEqual(requests.length, 1)
      yield* TestClock.adjust("25 seconds")
      assert.strictEqual(requests.length, 2)
      yield* Scope.close(scope, Exit.void)
    })
  })
})
