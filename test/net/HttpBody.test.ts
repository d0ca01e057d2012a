/** The capped body readers, over real loopback sockets (fetch) and web `Response`s built in memory. */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import { BodyTooLargeError, declaredLength, readTextCapped, readWebTextCapped } from "../../src/net/HttpBody.js"
import { type Hostile, startHostileServer } from "../support/hostileServer.js"

const endlessStream = () => {
  let pulled = 0
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++
      controller.enqueue(new Uint8Array(16 * 1024).fill(97))
    }
  })
  return { stream, pulled: () => pulled }
}

describe("readWebTextCapped (web Response)", () => {
  it("reads a body within the cap, UTF-8 included", async () => {
    assert.strictEqual(await readWebTextCapped(new Response("héllo ✓"), 64), "héllo ✓")
  })

  it("a null body reads as the empty string", async () => {
    assert.strictEqual(await readWebTextCapped(new Response(null, { status: 204 }), 64), "")
  })

  it("an endless body stops just past the cap and is cancelled", async () => {
    const { stream, pulled } = endlessStream()
    const error = await readWebTextCapped(new Response(stream), 64 * 1024).then(() => undefined, (e: unknown) => e)
    assert.instanceOf(error, BodyTooLargeError)
    assert.strictEqual((error as BodyTooLargeError).limitBytes, 64 * 1024)
    assert.isAtMost(pulled(), 8)
  })

  it("a declared Content-Length above the cap is refused before a byte is read", async () => {
    const { stream, pulled } = endlessStream()
    const response = new Response(stream, { headers: { "content-length": String(2 * 1024 ** 3) } })
    const before = pulled()
    const error = await readWebTextCapped(response, 1024).then(() => undefined, (e: unknown) => e)
    assert.instanceOf(error, BodyTooLargeError)
    assert.strictEqual((error as BodyTooLargeError).declaredBytes, 2 * 1024 ** 3)
    assert.isAtMost(pulled() - before, 1)
  })

  it("through fetch from a server sending an endless body: refused, and the server sees the hang-up", async () => {
    const server = await startHostileServer({ kind: "endless" })
    try {
      const response = await fetch(server.url)
      const error = await readWebTextCapped(response, 4 * 1024 * 1024).then(() => undefined, (e: unknown) => e)
      assert.instanceOf(error, BodyTooLargeError)
      for (let i = 0; i < 200 && server.hangUps() < 1; i++) await new Promise((r) => setTimeout(r, 50))
      assert.strictEqual(server.hangUps(), 1)
    } finally {
      await server.close()
    }
  })
})

describe("readTextCapped (Effect HttpClientResponse)", () => {
  const get = (mode: Hostile, limit: number) =>
    Effect.acquireUseRelease(
      Effect.promise(() => startHostileServer(mode)),
      (server) =>
        Effect.flatMap(HttpClient.HttpClient, (http) => http.execute(HttpClientRequest.get(server.url))).pipe(
          Effect.flatMap((response) => readTextCapped(response, limit)),
          Effect.map((text) => ({ text, hangUps: server.hangUps() }))
        ),
      (server) => Effect.promise(() => server.close())
    ).pipe(Effect.provide(FetchHttpClient.layer))

  it.live("reads a small JSON body", () =>
    Effect.gen(function*() {
      const { text } = yield* get({ kind: "json", body: { ok: true } }, 1024)
      assert.strictEqual(text, '{"ok":true}')
    }))

  it.live("a 2 GB Content-Length fails with BodyTooLargeError naming the declared size", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(get({ kind: "huge-length" }, 64 * 1024))
      assert.strictEqual(error._tag, "BodyTooLargeError")
      if (error._tag === "BodyTooLargeError") assert.strictEqual(error.declaredBytes, 2 * 1024 ** 3)
    }))

  it.live("an endless body fails with BodyTooLargeError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(get({ kind: "endless" }, 64 * 1024))
      assert.strictEqual(error._tag, "BodyTooLargeError")
    }))
})

describe("declaredLength", () => {
  it("reads plain integers only", () => {
    assert.strictEqual(declaredLength("42"), 42)
    assert.strictEqual(declaredLength(" 7 "), 7)
    assert.strictEqual(declaredLength("99999999999999999999"), Number.MAX_SAFE_INTEGER)
    for (const bad of [undefined, null, "", "-1", "1e9", "12abc", "0x10"]) assert.isUndefined(declaredLength(bad))
  })
})
