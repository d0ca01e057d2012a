/** The plugin's fetch wrapper against a real loopback server. */
import { afterEach, describe, expect, it } from "vitest"
import { makeKimiFetch, type TokenResult } from "../../src/opencode/KimiFetch.js"
import { type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

let server: ScriptedServer | undefined
afterEach(async () => {
  await server?.close()
  server = undefined
})

const identity = { "X-Msh-Platform": "kimi_cli", "X-Msh-Device-Id": "dev-1", "User-Agent": "KimiCLI/1.0.0" }

/** A token source that hands out at-1, then at-2 after a rejection, counting calls. */
const tokens = (opts: { refreshTo?: string; fail?: TokenResult } = {}) => {
  let current = "at-1"
  const calls = { get: 0, refresh: 0, rejected: [] as Array<string> }
  return {
    calls,
    getAccessToken: async (): Promise<TokenResult> => {
      calls.get++
      return opts.fail ?? { ok: true, token: current }
    },
    refreshAfterRejection: async (rejected: string): Promise<TokenResult> => {
      calls.refresh++
      calls.rejected.push(rejected)
      current = opts.refreshTo ?? "at-2"
      return { ok: true, token: current }
    }
  }
}

const authOf = (s: ScriptedServer) => s.requests.map((r) => r.headers["authorization"])

describe("makeKimiFetch", () => {
  it("overwrites the SDK's Authorization and adds the identity headers, keeping the caller's other headers", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: { ok: true } }))
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity })
    const res = await f(`${server.url}/coding/v1/chat/completions`, {
      method: "POST",
      headers: { Authorization: "Bearer kimi-oauth", "content-type": "application/json", "x-custom": "kept" },
      body: JSON.stringify({ model: "kimi-for-coding" })
    })
    expect(res.status).toBe(200)
    const seen = server.requests[0]!
    expect(seen.headers["authorization"]).toBe("Bearer at-1")
    expect(seen.headers["x-msh-platform"]).toBe("kimi_cli")
    expect(seen.headers["x-msh-device-id"]).toBe("dev-1")
    expect(seen.headers["user-agent"]).toBe("KimiCLI/1.0.0")
    expect(seen.headers["x-custom"]).toBe("kept")
    expect(JSON.parse(seen.body)).toEqual({ model: "kimi-for-coding" })
  })

  it("accepts Headers objects and header arrays", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: {} }))
    const f = makeKimiFetch({ ...tokens(), headers: identity })
    await f(server.url, { headers: new Headers({ Authorization: "Bearer x", "x-a": "1" }) })
    await f(server.url, { headers: [["Authorization", "Bearer y"], ["x-b", "2"]] })
    expect(authOf(server)).toEqual(["Bearer at-1", "Bearer at-1"])
    expect(server.requests[0]!.headers["x-a"]).toBe("1")
    expect(server.requests[1]!.headers["x-b"]).toBe("2")
  })

  it("a 401 is healed by one refresh and one retry that replays the same body", async () => {
    server = await startScriptedServer((req) =>
      req.headers["authorization"] === "Bearer at-1" ? { status: 401, body: { error: { message: "expired" } } } : { status: 200, body: { ok: 2 } }
    )
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity })
    const res = await f(`${server.url}/coding/v1/chat/completions`, { method: "POST", body: '{"stream":true}' })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ ok: 2 })
    expect(authOf(server)).toEqual(["Bearer at-1", "Bearer at-2"])
    expect(server.requests.map((r) => r.body)).toEqual(['{"stream":true}', '{"stream":true}'])
    expect(t.calls).toEqual({ get: 1, refresh: 1, rejected: ["at-1"] })
  })

  it("a streamed body is buffered once so the retry can send it again", async () => {
    server = await startScriptedServer((req) =>
      req.headers["authorization"] === "Bearer at-1" ? { status: 401, body: {} } : { status: 200, body: {} }
    )
    const f = makeKimiFetch({ ...tokens(), headers: identity })
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"messages":'))
        c.enqueue(new TextEncoder().encode("[]}"))
        c.close()
      }
    })
    const res = await f(server.url, { method: "POST", body: stream, duplex: "half" } as RequestInit)
    expect(res.status).toBe(200)
    expect(server.requests.map((r) => r.body)).toEqual(['{"messages":[]}', '{"messages":[]}'])
  })

  it("a Request input keeps its method, headers and body across the retry", async () => {
    server = await startScriptedServer((req) =>
      req.headers["authorization"] === "Bearer at-1" ? { status: 401, body: {} } : { status: 200, body: {} }
    )
    const f = makeKimiFetch({ ...tokens(), headers: identity })
    const res = await f(new Request(server.url, { method: "PUT", headers: { "x-r": "1" }, body: "payload" }))
    expect(res.status).toBe(200)
    expect(server.requests.map((r) => [r.method, r.body, r.headers["x-r"]])).toEqual([
      ["PUT", "payload", "1"],
      ["PUT", "payload", "1"]
    ])
  })

  it("no retry loop: a second 401 is returned as is", async () => {
    server = await startScriptedServer(() => ({ status: 401, body: { error: { message: "no" } } }))
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity })
    const res = await f(server.url, { method: "POST", body: "x" })
    expect(res.status).toBe(401)
    expect(server.requests).toHaveLength(2)
    expect(t.calls.refresh).toBe(1)
  })

  it("a refresh that yields the same token is not retried", async () => {
    server = await startScriptedServer(() => ({ status: 401, body: {} }))
    const f = makeKimiFetch({ ...tokens({ refreshTo: "at-1" }), headers: identity })
    const res = await f(server.url)
    expect(res.status).toBe(401)
    expect(server.requests).toHaveLength(1)
    expect((await res.json()).error.message).toMatch(/opencode auth login -p kimi/)
  })

  it("other statuses pass through untouched, without a refresh", async () => {
    server = await startScriptedServer(() => ({ status: 429, body: { error: { message: "slow" } } }))
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity })
    const res = await f(server.url)
    expect(res.status).toBe(429)
    expect(t.calls.refresh).toBe(0)
  })

  it("not logged in: an error Response naming the login command, and no request at all", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: {} }))
    const f = makeKimiFetch({
      ...tokens({ fail: { ok: false, status: 401, code: "kimi_login_required", message: "Kimi login required; run `opencode auth login -p kimi`." } }),
      headers: identity
    })
    const res = await f(server.url)
    expect(res.status).toBe(401)
    const body = await res.json()
    expect(body.error.code).toBe("kimi_login_required")
    expect(body.error.message).toMatch(/opencode auth login -p kimi/)
    expect(server.requests).toHaveLength(0)
  })
})
