/**
 * Fault injection: seeded (deterministic) 5xx / drops / 429, path scoping,
 * run-time fault windows and latency, on real loopback HTTP.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { authorize, models, postForm, refresh } from "./http.js"

const P = <A>(f: () => Promise<A>) => Effect.promise(f)

/** What a client sees for one request. */
const outcome = (apiBase: string, token: string) =>
  models(apiBase, token).then(
    (r) => {
      if (r.status === 429) return `429 retry-after=${r.headers.get("retry-after")}`
      if (r.status >= 500) {
        assert.include(r.headers.get("content-type") ?? "", "text/html")
        assert.include(r.text, `<title>${r.status} `)
        return `${r.status}`
      }
      return `${r.status}`
    },
    () => "dropped"
  )

const mixed = { serverErrorRate: 0.3, dropRate: 0.15, tooManyRequestsRate: 0.15, retryAfterSeconds: 7 }

describe("emulator faults", () => {
  it.live("a seed makes the sequence of faults repeatable", () =>
    Effect.gen(function*() {
      const run = Effect.gen(function*() {
        const emu = yield* KimiEmulator.make({ faults: { ...mixed, seed: 1234 } })
        const { accessToken } = emu.issueTokens()
        const seen: Array<string> = []
        for (let i = 0; i < 40; i++) seen.push(yield* P(() => outcome(emu.apiBaseUrl, accessToken)))
        return { seen, recorded: emu.requests().map((r) => r.fault ?? "none") }
      }).pipe(Effect.scoped)
      const a = yield* run
      const b = yield* run
      assert.deepStrictEqual(a.seen, b.seen)
      assert.strictEqual(a.recorded.length, 40, "one recorded request per client request (no hidden retries)")
      for (const kind of ["200", "dropped", "429 retry-after=7"]) assert.include(a.seen, kind)
      assert.isTrue(a.seen.some((s) => ["500", "502", "503"].includes(s)))
      // the log says which fault each request got
      a.seen.forEach((s, i) => {
        const expected = s === "dropped" ? "drop" : s.startsWith("429") ? "too_many_requests" : s === "200" ? "none" : "server_error"
        assert.strictEqual(a.recorded[i], expected, `request ${i}`)
      })
      // a different seed gives a different sequence
      const c = yield* Effect.gen(function*() {
        const emu = yield* KimiEmulator.make({ faults: { ...mixed, seed: 99 } })
        const { accessToken } = emu.issueTokens()
        const seen: Array<string> = []
        for (let i = 0; i < 40; i++) seen.push(yield* P(() => outcome(emu.apiBaseUrl, accessToken)))
        return seen
      }).pipe(Effect.scoped)
      assert.notDeepEqual(c, a.seen)
    }))

  it.live("faults can be scoped to one path", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ faults: { serverErrorRate: 1, paths: ["/api/oauth/token"] } })
      const t = emu.issueTokens()
      assert.strictEqual((yield* P(() => authorize(emu.url))).status, 200)
      assert.strictEqual((yield* P(() => models(emu.apiBaseUrl, t.accessToken))).status, 200)
      const r = yield* P(() => refresh(emu.url, t.refreshToken))
      assert.oneOf(r.status, [500, 502, 503])
      assert.isUndefined(r.json, "a proxy error page is not JSON")
    }))

  it.live("a run-time fault window; a request answered by a fault never reaches the OAuth logic", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make()
      const t = emu.issueTokens()
      emu.setFaults({ serverErrorRate: 1, paths: ["/api/oauth"] })
      const failed = yield* P(() => refresh(emu.url, t.refreshToken))
      assert.oneOf(failed.status, [500, 502, 503])
      emu.setFaults({ dropRate: 1 })
      const dropped = yield* P(() => refresh(emu.url, t.refreshToken).then(() => "answered", () => "dropped"))
      assert.strictEqual(dropped, "dropped")
      emu.setFaults({})
      // the refresh token was not spent by the failed attempts
      const ok = yield* P(() => refresh(emu.url, t.refreshToken))
      assert.strictEqual(ok.status, 200)
      assert.strictEqual(emu.stats().refreshes, 1)
      assert.strictEqual(emu.stats().spentTokenReplays, 0)
      assert.deepStrictEqual(emu.requests().map((r) => [r.fault, r.status]), [
        ["server_error", failed.status],
        ["drop", undefined],
        [undefined, 200]
      ])
    }))

  it.live("429 carries Retry-After; the approval page is outside the default fault scope", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ faults: { tooManyRequestsRate: 1, retryAfterSeconds: 3 } })
      const r = yield* P(() => authorize(emu.url))
      assert.strictEqual(r.status, 429)
      assert.strictEqual(r.headers.get("retry-after"), "3")
      const page = yield* P(() => postForm(`${emu.url}/device`, { user_code: "BCDF-GHJK", action: "approve" }))
      assert.strictEqual(page.status, 404, "answered by the page itself, not by a fault")
    }))

  it.live("latency delays in-scope requests by real time", () =>
    Effect.gen(function*() {
      // 2 s against the 1 s bound: a loaded machine slows the second request, never by a second.
      const emu = yield* KimiEmulator.make({ faults: { latencyMillis: 2000 } })
      const t0 = Date.now()
      assert.strictEqual((yield* P(() => authorize(emu.url))).status, 200)
      assert.isAtLeast(Date.now() - t0, 1990)
      emu.setFaults({})
      const t1 = Date.now()
      yield* P(() => authorize(emu.url))
      assert.isBelow(Date.now() - t1, 1000)
    }))

  it.live("chunkDelayMillis: a streamed answer arrives chunk by chunk, paced by real time; whole answers are not held", () =>
    Effect.gen(function*() {
      const emu = yield* KimiEmulator.make({ faults: { chunkDelayMillis: 150 } })
      const token = emu.issueTokens().accessToken
      const chat = (stream: boolean) =>
        fetch(`${emu.apiBaseUrl}/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ model: KimiEmulator.MODEL_ID, stream, messages: [{ role: "user", content: "one two three" }] })
        })
      const arrivals = yield* P(async () => {
        const res = await chat(true)
        const t0 = Date.now()
        const times: Array<number> = []
        let text = ""
        const reader = res.body!.getReader()
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          times.push(Date.now() - t0)
          text += new TextDecoder().decode(r.value)
        }
        return { times, text }
      })
      const events = arrivals.text.split("\n\n").filter((e) => e.startsWith("data: "))
      assert.isAtLeast(events.length, 8)
      assert.strictEqual(events.at(-1), "data: [DONE]")
      // Each event after the first waits 150 ms: the last arrives no sooner than that many pauses.
      assert.isAtLeast(arrivals.times.at(-1)!, (events.length - 1) * 150 - 20)
      assert.isAtLeast(arrivals.times.length, 3, "read in several pieces, as sent")
      const t1 = Date.now()
      assert.strictEqual((yield* P(() => chat(false).then((r) => r.status))), 200)
      assert.isBelow(Date.now() - t1, (events.length - 1) * 150, "a whole answer is not paced")
    }))
})
