/**
 * An API that echoes back what it was sent: every error body carries the
 * request's `Authorization` header, as is, in base64, URL-encoded or
 * JSON-escaped (with `\/`). Whatever each edge prints (an error's message
 * and everything reachable from it, a response body a host shows, the CLI's
 * stdout and stderr with debug logs on) holds neither token in any encoding.
 */
import { generateText } from "ai"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { createKimi } from "../../src/ai-sdk/index.js"
import * as KimiApi from "../../src/api/KimiApi.js"
import { KimiAuthPlugin } from "../../src/opencode/KimiPlugin.js"
import { makePluginCore } from "../../src/opencode/PluginCore.js"
import { KimiOAuthClient } from "../../src/promise/KimiOAuthClient.js"
import { isolatedEnv, makeTemp, rmTemp, runCli } from "../support/cli.js"
import { encodingsFound, reachableText } from "../support/secretReach.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"
import { seedLogin } from "../support/tokens.js"

/** Tokens (RFC 6750 b64token) with the characters each encoding changes (`/`, `+`, `=`), long enough for every base64 alignment. */
const ACCESS = "kimi-at/0+Secret_Access.Token-1234567890=="
const REFRESH = "kimi-rt/0+Secret_Refresh.Token-0987654321=="

const ENCODINGS = {
  plain: (h: string) => h,
  base64: (h: string) => Buffer.from(h, "utf8").toString("base64"),
  "url-encoded": (h: string) => encodeURIComponent(h),
  "json-escaped": (h: string) => JSON.stringify(h).slice(1, -1).replace(/\//g, "\\/")
} as const
type Encoding = keyof typeof ENCODINGS

let home: string
let server: ScriptedServer | undefined
const disposers: Array<() => Promise<unknown>> = []
beforeEach(() => {
  home = makeTemp("kimi-echo-")
})
afterEach(async () => {
  while (disposers.length) await disposers.pop()!().catch(() => {})
  await server?.close()
  server = undefined
  rmTemp(home)
})

const storage = () => path.join(home, ".opencode-kimi-auth")
const seed = () =>
  seedLogin(path.join(storage(), "oauth.json"), { access: ACCESS, refresh: REFRESH, expiresAt: Math.floor(Date.now() / 1000) + 800 })

/** Echoes `Authorization` in every error: chats get 400 (or the 403 quota answer), `/usages` and `/models` 500. */
const echoingServer = (encoding: Encoding, chat: "bad" | "quota" = "bad") =>
  startScriptedServer((req) => {
    const echo = ENCODINGS[encoding](String(req.headers["authorization"] ?? ""))
    const json = { "content-type": "application/json" }
    if (req.path.endsWith("/chat/completions")) {
      return chat === "quota"
        ? { status: 403, headers: json, body: `{"error":{"message":"You've reached your usage limit for this billing cycle. You sent ${echo}","type":"permission_error"}}` }
        : { status: 400, headers: json, body: `{"error":{"message":"Bad request; headers were ${echo}","type":"invalid_request_error"}}` }
    }
    return { status: 500, body: `internal error handling request with ${echo}` }
  })

/** Every encoding of either token found in `printed`, `\/`-escaped JSON included. */
const leaks = (printed: string) =>
  [ACCESS, REFRESH].flatMap((t) => [
    ...encodingsFound(printed, t),
    ...(printed.includes(t.replace(/\//g, "\\/")) ? ["json-escaped"] : [])
  ])
const options = () => ({ oauthHost: server!.url, apiBaseUrl: `${server!.url}/coding/v1`, storageDir: storage() })
const chatInit = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] }) }

describe.each(Object.keys(ENCODINGS) as Array<Encoding>)("a server echoing the bearer (%s)", (encoding) => {
  it("the server really echoes it (the test would see a leak)", async () => {
    server = await echoingServer(encoding)
    const r = await fetch(`${server.url}/coding/v1/chat/completions`, { ...chatInit, headers: { authorization: `Bearer ${ACCESS}` } })
    expect(leaks(await r.text()).length).toBeGreaterThan(0)
  })

  it("the facade: fetch's error and quota answers, and usage()'s rejection", async () => {
    server = await echoingServer(encoding)
    seed()
    const client = new KimiOAuthClient(options())
    disposers.push(() => client.dispose())
    const answer = await client.fetch(`${server.url}/coding/v1/chat/completions`, chatInit)
    expect(answer.status).toBe(400)
    expect(leaks(await answer.text())).toEqual([])
    const rejected = await client.usage().catch((e: unknown) => e)
    expect(leaks(reachableText(rejected))).toEqual([])
    await server.close()
    server = await echoingServer(encoding, "quota")
    const quotaClient = new KimiOAuthClient(options())
    disposers.push(() => quotaClient.dispose())
    const quota = await quotaClient.fetch(`${server.url}/coding/v1/chat/completions`, chatInit)
    const text = await quota.text()
    expect(text).toMatch(/usage limit is used up/)
    expect(leaks(text)).toEqual([])
  })

  it("the AI SDK provider and the Effect KimiApi: their errors", async () => {
    server = await echoingServer(encoding)
    seed()
    const kimi = createKimi(options())
    disposers.push(() => kimi.dispose())
    const aiError = await generateText({ model: kimi("kimi-for-coding"), prompt: "hi", maxRetries: 0 }).catch((e: unknown) => e)
    expect(leaks(reachableText(aiError))).toEqual([])
    const effectErrors = await Effect.runPromise(
      Effect.gen(function*() {
        const api = yield* KimiApi.KimiApi
        const chat = yield* Effect.flip(api.chat({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] }))
        const models = yield* Effect.flip(api.models)
        return [chat, models]
      }).pipe(Effect.provide(KimiApi.KimiApi.layerNode(options()).pipe(Layer.orDie)))
    )
    expect(effectErrors.map((e) => e._tag)).toEqual(["KimiApiError", "KimiApiError"])
    expect(leaks(reachableText(effectErrors))).toEqual([])
  })

  it("the OpenCode plugin: OpenCode 1's fetch and OpenCode 2's answer hook", async () => {
    server = await echoingServer(encoding)
    seed()
    const plugin = await KimiAuthPlugin({}, options())
    disposers.push(() => plugin.dispose())
    const loaded = await plugin.auth.loader(async () => undefined as never)
    const v1 = await loaded.fetch!(`${server.url}/coding/v1/chat/completions`, chatInit)
    expect(v1.status).toBe(400)
    expect(leaks(await v1.text())).toEqual([])
    const core = makePluginCore({ options: options(), region: "mainland-cn", providerId: "kimi-code-plan-cn", line: "v2" })
    disposers.push(() => core.dispose())
    // OpenCode 2 sends the request itself with our token; the hook sees Kimi's answer.
    const hostAnswer = await fetch(`${server.url}/coding/v1/chat/completions`, { ...chatInit, headers: { authorization: `Bearer ${ACCESS}` } })
    const v2 = await core.judgeRefusal(hostAnswer, ACCESS)
    expect(v2.status).toBe(400)
    expect(leaks(await v2.text())).toEqual([])
  })

  it("the CLI: kimi-auth usage --debug, stdout and stderr", async () => {
    server = await echoingServer(encoding)
    seed()
    const env = isolatedEnv(home, { KIMI_OAUTH_HOST: server.url, KIMI_CODE_BASE_URL: `${server.url}/coding/v1` })
    const r = await runCli(["usage", "--debug"], env)
    expect(r.code).toBe(6)
    expect(r.stderr).toMatch(/answered 500 to \/usages/)
    expect(leaks(r.stdout + r.stderr)).toEqual([])
  })
})
