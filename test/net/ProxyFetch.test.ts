/**
 * The proxying fetch (`ProxyFetch.ts`) in this process, over real loopback
 * sockets: plain-http targets in absolute form through the test proxy (the
 * https tunnel needs the test CA at start-up: test/proxy/proxy.test.ts), the
 * web `Response` it hands back (streamed, cancellable, abortable), redirects
 * as `fetch` does them, and failures that name the proxy without its
 * credentials.
 */
import * as http from "node:http"
import * as net from "node:net"
import * as zlib from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { readWebTextCapped } from "../../src/net/HttpBody.js"
import { makeProxyFetch, type ProxyError } from "../../src/net/ProxyFetch.js"
import { deadPort, startProxy, type TestProxy } from "../support/proxy.js"

let target: http.Server
let targetPort: number
let proxy: TestProxy
/** Closed connections of `/endless` answers, for the cancel and abort cases. */
let endlessClosed = 0

beforeAll(async () => {
  target = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://x")
      if (url.pathname === "/redirect") {
        res.writeHead(Number(url.searchParams.get("status") ?? 302), { location: url.searchParams.get("to") ?? "/echo" }).end("moved")
        return
      }
      if (url.pathname === "/gzip") {
        res.writeHead(200, { "content-encoding": "gzip", "content-type": "text/plain" }).end(zlib.gzipSync("unzipped text"))
        return
      }
      if (url.pathname === "/endless") {
        res.writeHead(200, { "content-type": "text/plain" })
        const timer = setInterval(() => res.write("x".repeat(16 * 1024)), 5)
        res.once("close", () => {
          clearInterval(timer)
          endlessClosed++
        })
        return
      }
      if (url.pathname === "/slow-head") {
        setTimeout(() => res.writeHead(200).end("late"), 10_000).unref()
        return
      }
      if (url.pathname === "/empty") {
        res.writeHead(204).end()
        return
      }
      res.writeHead(201, { "content-type": "application/json", "x-multi": ["a", "b"] }).end(JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8")
      }))
    })
  })
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r))
  targetPort = (target.address() as net.AddressInfo).port
  proxy = await startProxy({ "kimi.test:80": targetPort, "other.test:80": targetPort }, { credentials: { user: "u", password: "pw-secret" } })
})
afterAll(async () => {
  await proxy?.close()
  target?.closeAllConnections()
  await new Promise<void>((r) => (target ? target.close(() => r()) : r()))
})

const viaProxy = () => makeProxyFetch({ HTTP_PROXY: proxy.urlWith("u", "pw-secret") })

describe("plain http through the proxy", () => {
  it("sends the absolute form with Proxy-Authorization, the method, the headers and the body", async () => {
    const seen = proxy.requests.length
    const res = await viaProxy()("http://kimi.test/echo?q=1", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-msh-device-id": "dev-1" },
      body: new URLSearchParams({ grant_type: "refresh_token" })
    })
    expect(res.status).toBe(201)
    expect(res.url).toBe("http://kimi.test/echo?q=1")
    expect(res.headers.get("x-multi")).toBe("a, b")
    const echo = await res.json()
    expect(echo).toMatchObject({ method: "POST", url: "/echo?q=1", body: "grant_type=refresh_token" })
    expect(echo.headers).toMatchObject({ host: "kimi.test", "x-msh-device-id": "dev-1", "content-length": "24" })
    expect(echo.headers["proxy-authorization"]).toBeUndefined()
    expect(proxy.requests.slice(seen)).toEqual([{
      method: "POST",
      target: "http://kimi.test/echo?q=1",
      proxyAuthorization: `Basic ${Buffer.from("u:pw-secret").toString("base64")}`
    }])
  })

  it("a Request input and a stream body with duplex: half (what FetchHttpClient sends)", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("streamed "))
        c.enqueue(new TextEncoder().encode("body"))
        c.close()
      }
    })
    const res = await viaProxy()(new Request("http://kimi.test/echo", { method: "PUT", body, duplex: "half" } as RequestInit))
    expect(await res.json()).toMatchObject({ method: "PUT", body: "streamed body" })
  })

  it("decodes gzip as fetch does; a 204 has a null body", async () => {
    expect(await (await viaProxy()("http://kimi.test/gzip")).text()).toBe("unzipped text")
    const empty = await viaProxy()("http://kimi.test/empty")
    expect(empty.status).toBe(204)
    expect(empty.body).toBeNull()
  })
})

describe("redirects", () => {
  it('redirect: "manual" hands back the 3xx itself (the OAuth client refuses it)', async () => {
    const res = await viaProxy()("http://kimi.test/redirect?to=http://other.test/echo", { method: "POST", body: "x", redirect: "manual" })
    expect(res.status).toBe(302)
    expect(res.headers.get("location")).toBe("http://other.test/echo")
  })

  it("follows by default: a POST 302 becomes a GET; Authorization is dropped across origins, kept on the same one", async () => {
    const cross = await viaProxy()("http://kimi.test/redirect?to=http://other.test/echo", {
      method: "POST",
      headers: { authorization: "Bearer tok-secret" },
      body: "x"
    })
    expect(cross.redirected).toBe(true)
    expect(cross.url).toBe("http://other.test/echo")
    const crossEcho = await cross.json()
    expect(crossEcho).toMatchObject({ method: "GET", body: "" })
    expect(crossEcho.headers["authorization"]).toBeUndefined()

    const same = await (await viaProxy()("http://kimi.test/redirect?status=307&to=/echo", {
      method: "POST",
      headers: { authorization: "Bearer tok" },
      body: "kept"
    })).json()
    expect(same).toMatchObject({ method: "POST", body: "kept" })
    expect(same.headers["authorization"]).toBe("Bearer tok")
  })

  it('redirect: "error" rejects', async () => {
    await expect(viaProxy()("http://kimi.test/redirect", { redirect: "error" })).rejects.toThrow(/redirect/)
  })
})

describe("streams, caps and aborts", () => {
  it("a capped read cancels the body and the connection closes (HttpBody's readers over a proxied answer)", async () => {
    const before = endlessClosed
    const res = await viaProxy()("http://kimi.test/endless")
    await expect(readWebTextCapped(res, 64 * 1024)).rejects.toMatchObject({ _tag: "BodyTooLargeError" })
    await expect.poll(() => endlessClosed, { timeout: 10_000 }).toBe(before + 1)
  })

  it("the signal aborts while waiting for the answer: rejects with its reason at once", async () => {
    const controller = new AbortController()
    const pending = viaProxy()("http://kimi.test/slow-head", { signal: controller.signal })
    setTimeout(() => controller.abort(new DOMException("stopped", "AbortError")), 100)
    const started = Date.now()
    await expect(pending).rejects.toMatchObject({ name: "AbortError" })
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it("the signal aborts in the middle of the body: the read rejects and the connection closes", async () => {
    const before = endlessClosed
    const controller = new AbortController()
    const res = await viaProxy()("http://kimi.test/endless", { signal: controller.signal })
    const reader = res.body!.getReader()
    await reader.read()
    controller.abort()
    await expect((async () => {
      for (;;) if ((await reader.read()).done) return
    })()).rejects.toMatchObject({ name: "AbortError" })
    await expect.poll(() => endlessClosed, { timeout: 10_000 }).toBe(before + 1)
  })

  it("an already aborted signal rejects without a request", async () => {
    const seen = proxy.requests.length
    await expect(viaProxy()("http://kimi.test/echo", { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" })
    expect(proxy.requests.length).toBe(seen)
  })
})

describe("failures name the proxy, never its credentials", () => {
  it("a dead proxy: ProxyError, ECONNREFUSED, host:port and the variable", async () => {
    const port = await deadPort()
    const f = makeProxyFetch({ HTTPS_PROXY: `http://alice:pw-secret@127.0.0.1:${port}` })
    const e = (await f("https://kimi.test/api/oauth/token", { method: "POST" }).catch((x: unknown) => x)) as ProxyError
    expect(e).toBeInstanceOf(TypeError)
    expect(e).toMatchObject({ name: "ProxyError", code: "ECONNREFUSED", proxy: `127.0.0.1:${port}`, variable: "HTTPS_PROXY" })
    expect(e.message).toContain(`127.0.0.1:${port}`)
    expect(`${e.message} ${e.stack} ${JSON.stringify(e)}`).not.toMatch(/alice|pw-secret/)
  })

  it("a proxy that refuses the tunnel (407 on wrong credentials): ERR_PROXY_TUNNEL with the status", async () => {
    const f = makeProxyFetch({ HTTPS_PROXY: proxy.urlWith("u", "wrong-pass") })
    const e = (await f("https://kimi.test/").catch((x: unknown) => x)) as ProxyError
    expect(e).toMatchObject({ code: "ERR_PROXY_TUNNEL", proxy: `127.0.0.1:${proxy.port}` })
    expect(e.message).toContain("407")
    expect(e.message).not.toContain("wrong-pass")
    const unknown = (await makeProxyFetch({ HTTPS_PROXY: proxy.urlWith("u", "pw-secret") })("https://nowhere.test/").catch((x: unknown) => x)) as ProxyError
    expect(unknown).toMatchObject({ code: "ERR_PROXY_TUNNEL" })
    expect(unknown.message).toContain("502")
  })

  it("an unusable variable: ERR_PROXY_INVALID, the value never echoed", async () => {
    const e = (await makeProxyFetch({ HTTPS_PROXY: "socks5://bob:pw-secret@proxy:1080" })("https://kimi.test/").catch((x: unknown) => x)) as ProxyError
    expect(e).toMatchObject({ code: "ERR_PROXY_INVALID", variable: "HTTPS_PROXY" })
    expect(e.message).toContain("socks5")
    expect(e.message).not.toMatch(/bob|pw-secret/)
  })
})

describe("what goes direct", () => {
  it("loopback and NO_PROXY go to the direct fetch, untouched", async () => {
    const calls: Array<string> = []
    const direct = () => ((input: RequestInfo | URL) => {
      calls.push(String(input))
      return Promise.resolve(new Response("direct"))
    }) as typeof fetch
    const f = makeProxyFetch({ HTTP_PROXY: "http://127.0.0.1:9", NO_PROXY: "kimi.test" }, direct)
    const seen = proxy.requests.length
    expect(await (await f(`http://127.0.0.1:${targetPort}/echo`)).text()).toBe("direct")
    expect(await (await f("http://kimi.test/echo")).text()).toBe("direct")
    expect(calls).toEqual([`http://127.0.0.1:${targetPort}/echo`, "http://kimi.test/echo"])
    expect(proxy.requests.length).toBe(seen)
  })
})
