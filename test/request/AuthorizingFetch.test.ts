/** The plugin's fetch wrapper against a real loopback server. */
import { afterEach, describe, expect, it } from "vitest"
import { makeKimiFetch, type TokenResult } from "../../src/request/AuthorizingFetch.js"
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
    expect((await res.json()).error.message).toMatch(/opencode auth login/)
  })

  it("other statuses pass through untouched, without a refresh; a plain rate limit keeps its status, body and Retry-After", async () => {
    server = await startScriptedServer((req) =>
      req.path === "/teapot"
        ? { status: 418, body: { error: { message: "short and stout" } } }
        : {
          status: 429,
          body: { error: { message: "We're receiving too many requests", type: "rate_limit_reached_error" } },
          headers: { "retry-after": "3" }
        }
    )
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity })
    const res = await f(server.url)
    expect(res.status).toBe(429)
    expect(res.headers.get("retry-after")).toBe("3")
    expect((await res.json()).error.type).toBe("rate_limit_reached_error")
    const teapot = await f(`${server.url}/teapot`)
    expect(teapot.status).toBe(418)
    expect(t.calls.refresh).toBe(0)
    expect(server.requests).toHaveLength(2)
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

describe("makeKimiFetch: quota, scope and failures", () => {
  const base = () => `${server!.url}/coding/v1`
  const usages = {
    usage: { limit: "100", used: "100", remaining: "0", resetTime: "2030-01-07T00:00:00Z" },
    limits: [{ window: { duration: 300, timeUnit: "TIME_UNIT_MINUTE" }, detail: { limit: "20", used: "3", remaining: "17", resetTime: "2030-01-01T05:00:00Z" } }]
  }
  const quota403 = { status: 403, body: { error: { message: "You've reached your usage limit for this billing cycle, please upgrade.", type: "permission_denied_error" } } }
  const quota429 = { status: 429, body: { error: { message: "quota exceeded", type: "exceeded_current_quota_error" } } }

  for (const [name, reply] of [["403 usage limit", quota403], ["429 exceeded_current_quota_error", quota429]] as const) {
    it(`a quota answer (${name}) is never refreshed or retried, and becomes a 403 naming the used-up window and its reset`, async () => {
      server = await startScriptedServer((req) => req.path.endsWith("/usages") ? { status: 200, body: usages } : reply)
      const t = tokens()
      const f = makeKimiFetch({ ...t, headers: identity, apiBaseUrl: base })
      const res = await f(`${base()}/chat/completions`, { method: "POST", body: "{}" })
      expect(res.status).toBe(403)
      expect(res.headers.get("x-kimi-auth-error")).toBe("kimi_quota_exceeded")
      const { error } = await res.json()
      expect(error.code).toBe("kimi_quota_exceeded")
      expect(error.message).toMatch(/usage limit is used up \(weekly window: 100 of 100 used\); it resets at 20(29|30)-/)
      expect(error.message).toMatch(/not a login problem/)
      expect(t.calls).toEqual({ get: 1, refresh: 0, rejected: [] })
      expect(server.requests.map((r) => r.path)).toEqual(["/coding/v1/chat/completions", "/coding/v1/usages"])
      expect(server.requests[1]!.headers["authorization"]).toBe("Bearer at-1")
      expect(server.requests[1]!.headers["x-msh-device-id"]).toBe("dev-1")
    })
  }

  it("a quota answer without a readable /usages still says the quota is used up", async () => {
    server = await startScriptedServer((req) => req.path.endsWith("/usages") ? { status: 500, body: "<html>" } : quota429)
    const f = makeKimiFetch({ ...tokens(), headers: identity, apiBaseUrl: base() })
    const res = await f(`${base()}/chat/completions`, { method: "POST", body: "{}" })
    expect(res.status).toBe(403)
    expect((await res.json()).error.message).toMatch(/^Your Kimi For Coding plan's usage limit is used up\. .*Kimi said: quota exceeded$/)
  })

  it("a 403 that is not about the quota passes through as Kimi sent it", async () => {
    server = await startScriptedServer(() => ({ status: 403, body: { error: { message: "access terminated", type: "access_terminated_error" } } }))
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity, apiBaseUrl: base() })
    const res = await f(`${base()}/models`)
    expect(res.status).toBe(403)
    expect((await res.json()).error.type).toBe("access_terminated_error")
    expect(t.calls.refresh).toBe(0)
  })

  it("with apiBaseUrl, other hosts and paths pass through untouched: no bearer, no identity, no token lookup", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: {} }))
    const t = tokens()
    const f = makeKimiFetch({ ...t, headers: identity, apiBaseUrl: base() })
    await f(`${server.url}/elsewhere`, { headers: { authorization: "Bearer theirs" } })
    await f(new Request(`${server.url}/coding/v1x/models`))
    await f(`${base()}/models`)
    expect(server.requests.map((r) => [r.path, r.headers["authorization"], r.headers["x-msh-device-id"]])).toEqual([
      ["/elsewhere", "Bearer theirs", undefined],
      ["/coding/v1x/models", undefined, undefined],
      ["/coding/v1/models", "Bearer at-1", "dev-1"]
    ])
    expect(t.calls.get).toBe(1)
  })

  it("a token source that throws becomes an error Response, never an exception", async () => {
    server = await startScriptedServer(() => ({ status: 200, body: {} }))
    const f = makeKimiFetch({
      headers: identity,
      getAccessToken: () => Promise.reject(new Error("boom")),
      refreshAfterRejection: () => Promise.reject(new Error("boom"))
    })
    const res = await f(server.url)
    expect(res.status).toBe(500)
    expect((await res.json()).error.code).toBe("kimi_auth_error")
    expect(server.requests).toHaveLength(0)
  })

  it("a refresh that fails after a 401 becomes its error Response, and nothing is retried", async () => {
    server = await startScriptedServer(() => ({ status: 401, body: {} }))
    const f = makeKimiFetch({
      headers: identity,
      getAccessToken: async () => ({ ok: true, token: "at-1" }),
      refreshAfterRejection: async () => ({ ok: false, status: 401, code: "kimi_login_required", message: "Kimi login required" })
    })
    const res = await f(server.url)
    expect(res.status).toBe(401)
    expect((await res.json()).error.code).toBe("kimi_login_required")
    expect(server.requests).toHaveLength(1)
  })

  it("a network failure or an abort rejects with the underlying fetch's own error, as fetch does", async () => {
    const f = makeKimiFetch({ ...tokens(), headers: identity })
    await expect(f("http://127.0.0.1:1/")).rejects.toThrow(/fetch failed/)
    server = await startScriptedServer(() => new Promise(() => {}))
    const controller = new AbortController()
    const pending = f(server.url, { signal: controller.signal })
    setTimeout(() => controller.abort(), 50)
    await expect(pending).rejects.toMatchObject({ name: "AbortError" })
  })
})
