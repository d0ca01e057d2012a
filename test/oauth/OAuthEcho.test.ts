/**
 * A token endpoint on loopback that refuses and echoes back the secret it was
 * sent (the refresh token, the device code) spelled in JSON `\uXXXX` escapes,
 * base64 and URL-encoded, in `error`, `error_description` and `error_uri`:
 * after JSON decoding the escapes are the secret again (hunt case 6b). The
 * error's message and every field hold no form of it, raw or encoded, even
 * with the escapes of the text decoded. Plus the scrubber's own table
 * (src/oauth/AnswerScrub.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { scrubBody, scrubText } from "../../src/oauth/AnswerScrub.js"
import { OAuthClient } from "../../src/oauth/OAuthClient.js"
import { encodingsFound, reachableText } from "../support/secretReach.js"
import { identityLayer } from "../support/settings.js"

const REFRESH = "emu_rt_Zk9xR2tWb3BqY1h3TnR1ZUhqS0xt0"
const DEVICE = "dc_Q2xvc2VUaGVEb29yQmVoaW5kWW91"
/** Short enough that its escapes fit in a message's excerpt (160 characters). */
const SHORT = "rt_Zk9xR2tWb3Bq"

/** `s` with every character as a JSON `\uXXXX` escape. */
const u = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")
const b64 = (s: string) => Buffer.from(s).toString("base64")

/** The ways the server spells the secret: each is JSON source text, put inside a string literal. */
const spellings: ReadonlyArray<[string, (s: string) => string]> = [
  ["\\u-escaped", u],
  ["\\u-escaped base64", (s) => u(b64(`x${s}`))],
  ["\\u-escaped URL-encoding", (s) => u(encodeURIComponent(`${s}/+`))],
  ["base64", (s) => b64(`rt=${s}`)],
  ["base64url", (s) => Buffer.from(s).toString("base64url")],
  ["URL-encoding", (s) => encodeURIComponent(`${s}&`)],
  ["\\u-escaped, in part", (s) => `${s.slice(0, 6)}${u(s.slice(6))}`]
]

type Where = "error_description" | "error_uri" | "error" | "non-JSON body"

/** The answer body echoing `secret` spelled by `spell` in `where`. */
const echoBody = (secret: string, spell: (s: string) => string, where: Where): string => {
  const s = spell(secret)
  switch (where) {
    case "error_description":
      return `{"error":"invalid_request","error_description":"The provided grant is invalid: ${s}"}`
    case "error_uri":
      return `{"error":"invalid_request","error_description":"see the link","error_uri":"https://kimi.example/e?t=${s}"}`
    case "error":
      return `{"error":"${s}"}`
    case "non-JSON body":
      return `bad request: ${s}`
  }
}

/** A loopback token endpoint answering every request with `body` (HTTP 400). */
const withEchoServer = <A, E>(body: string, f: (url: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(() =>
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((req, res) => {
          req.resume()
          req.on("end", () => {
            res.writeHead(400, { "content-type": "application/json" })
            res.end(body)
          })
        })
        server.listen(0, "127.0.0.1", () => resolve(server))
      })
    ),
    (server) => f(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    (server) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  )

const client = (url: string) =>
  OAuthClient.layer.pipe(Layer.provide(Layer.mergeAll(FetchHttpClient.layer, identityLayer({ oauthHost: url }))))

/** Every encoding of `secret` reachable from `error`, also once the text's JSON escapes are decoded. */
const leaks = (error: unknown, secret: string): Array<string> => {
  const text = reachableText(error)
  const decoded = text.replace(/\\u[0-9a-fA-F]{4}/g, (e) => String.fromCharCode(parseInt(e.slice(2), 16)))
  return [...new Set([...encodingsFound(text, secret), ...encodingsFound(decoded, secret).map((f) => `${f} (after unescaping)`)])]
}

const calls: ReadonlyArray<[string, string, (url: string) => Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>]> = [
  ["refresh", REFRESH, (url) => Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(REFRESH))).pipe(Effect.provide(client(url)))],
  ["refresh (a short token)", SHORT, (url) => Effect.flatMap(OAuthClient, (c) => c.refreshToken(Redacted.make(SHORT))).pipe(Effect.provide(client(url)))],
  ["device poll", DEVICE, (url) => Effect.flatMap(OAuthClient, (c) => c.pollDeviceToken(Redacted.make(DEVICE))).pipe(Effect.provide(client(url)))]
]

describe("an OAuth refusal that echoes the secret sent, encoded, never puts it into the error", () => {
  for (const [call, secret, run] of calls) {
    for (const where of ["error_description", "error_uri", "error", "non-JSON body"] as const) {
      for (const [name, spell] of spellings) {
        it.live(`${call}: ${name} in ${where}`, () =>
          withEchoServer(echoBody(secret, spell, where), (url) =>
            Effect.gen(function*() {
              const error = yield* Effect.flip(run(url))
              assert.notStrictEqual(error._tag, "NetworkError", error.message)
              assert.deepStrictEqual(leaks(error, secret), [], `${error._tag}: ${error.message}`)
            })))
      }
    }
  }

  it.live("what is not secret is still shown: the error code and the rest of the description", () =>
    withEchoServer(echoBody(REFRESH, u, "error_description"), (url) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(calls[0]![2](url))
        assert.strictEqual(error._tag, "OAuthError")
        assert.include(error.message, "invalid_request")
        assert.include(error.message, "The provided grant is invalid: <redacted>")
      })))
})

describe("scrubBody and scrubText (table)", () => {
  const secrets = [REFRESH]
  const cases: ReadonlyArray<[string, string, string]> = [
    ["a \\u-escaped literal is decoded, scrubbed, re-encoded", `{"d":"x ${u(REFRESH)} y"}`, `{"d":"x <redacted> y"}`],
    ["a literal without the secret keeps its escapes", `{"d":"caf\\u00e9 ${u("ok")}"}`, `{"d":"caf\\u00e9 ${u("ok")}"}`],
    ["escapes outside any literal: the decoded view, scrubbed", `bad: ${u(REFRESH)}`, "bad: <redacted>"],
    ["the raw forms as before", `refresh=${encodeURIComponent(REFRESH)}`, "refresh=<redacted>"],
    ["no secret: untouched", `{"error":"invalid_grant"}`, `{"error":"invalid_grant"}`]
  ]
  for (const [name, body, want] of cases) it(name, () => assert.strictEqual(scrubBody(body, secrets), want))
  it("a literal that never closes is left as text, and a body of them is scrubbed in one pass (64 KiB of \\\" in well under a second)", () => {
    assert.strictEqual(scrubBody(`"open ${u(REFRESH)}\n{"d":"${u(REFRESH)}"}`, secrets), `"open <redacted>\n{"d":"<redacted>"}`)
    const hostile = `"${"\\\"".repeat(32 * 1024)}`
    const started = performance.now()
    assert.strictEqual(scrubBody(hostile, secrets), hostile)
    assert.isBelow(performance.now() - started, 1000)
  })
  it("no secrets sent: the body as is", () => assert.strictEqual(scrubBody(`x ${u("a")}`, []), `x ${u("a")}`))
  it("scrubText removes the base64 and URL-encoded forms from a decoded value", () => {
    assert.strictEqual(scrubText(`a ${encodeURIComponent(REFRESH)} b`, secrets), "a <redacted> b")
    assert.notInclude(scrubText(`a ${b64(`zz${REFRESH}`)} b`, secrets), b64(`zz${REFRESH}`).slice(4, 20))
  })
})
