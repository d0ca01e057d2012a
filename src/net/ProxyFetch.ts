/**
 * A `fetch` for Node that honours `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`
 * (Node's own `fetch` ignores them before 24 and without
 * `NODE_USE_ENV_PROXY`). Loaded only when a proxy variable is set
 * (`EnvFetch.ts`); Bun's `fetch` honours them itself and never loads it.
 *
 * - Where {@link proxyFor} says direct, the request goes to `globalThis.fetch`
 *   untouched.
 * - An `https:` target goes through an HTTP `CONNECT` tunnel opened with
 *   `node:http`, with TLS to the target over it (`node:tls`: the target's
 *   certificate is checked against its name, `NODE_EXTRA_CA_CERTS` honoured);
 *   an `http:` target is sent to the proxy in absolute form.
 * - `Proxy-Authorization: Basic` comes from the proxy URL's user info.
 * - The answer is a web `Response` with a streamed body (cancel it and the
 *   connection closes), the `signal` aborts at any point, `redirect` is
 *   honoured (`manual` hands back the 3xx, `error` rejects, `follow` follows
 *   up to 20 and drops `Authorization` across origins, as `fetch` does).
 * - Every failure rejects with a {@link ProxyError} naming the proxy as
 *   `host:port` and its variable, never its credentials.
 *
 * @since 0.2.0
 */
import * as http from "node:http"
import * as net from "node:net"
import * as tls from "node:tls"
import * as zlib from "node:zlib"
import { type ProxyEnv, proxyFor, type ProxyRoute } from "./ProxyEnv.js"

/**
 * A request sent through a proxy failed. A `TypeError`, as `fetch`'s own
 * network failures are; `code` is the system's (`ECONNREFUSED`) or
 * `ERR_PROXY_TUNNEL` (the proxy refused the tunnel), `ERR_PROXY_INVALID`
 * (the variable cannot be used); `proxy` is `host:port`.
 */
export class ProxyError extends TypeError {
  override readonly name = "ProxyError"
  constructor(
    readonly proxy: string,
    readonly code: string,
    /** What went wrong, in words, without the proxy's name (`ECONNREFUSED`, `it refused the tunnel …`). */
    readonly detail: string,
    readonly variable: string
  ) {
    super(`fetch failed through the proxy ${proxy} (${variable}): ${detail}`)
  }
}

interface Outgoing {
  readonly url: URL
  readonly method: string
  readonly headers: Headers
  readonly body: Uint8Array<ArrayBuffer> | undefined
}

const MAX_REDIRECTS = 20
/** How long the proxy may take to answer a `CONNECT` (the caller's own deadline usually ends it first). */
const TUNNEL_TIMEOUT_MS = 30_000
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304])

const codeOf = (e: unknown): string => {
  const code = (e as { code?: unknown } | undefined)?.code
  return typeof code === "string" && /^[A-Z0-9_]{2,40}$/.test(code) ? code : "ECONNRESET"
}

const authorityOf = (url: URL) => `${url.hostname}:${url.port === "" ? (url.protocol === "https:" ? 443 : 80) : url.port}`

/** Rejects with the signal's reason once it aborts; `cleanup` stops listening. */
const onAbort = (signal: AbortSignal | undefined, abort: (reason: unknown) => void) => {
  if (signal === undefined) return () => {}
  const listener = () => abort(signal.reason)
  signal.addEventListener("abort", listener, { once: true })
  return () => signal.removeEventListener("abort", listener)
}

/** Opens a `CONNECT` tunnel to `target` through the proxy: the raw socket, or a {@link ProxyError}. */
const tunnel = (route: ProxyRoute, target: URL, signal: AbortSignal | undefined): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const authority = authorityOf(target)
    const headers: Record<string, string> = { host: authority }
    if (route.authorization !== undefined) headers["proxy-authorization"] = route.authorization
    const req = http.request({ host: route.host, port: route.port, method: "CONNECT", path: authority, headers, agent: false })
    // A proxy that takes the connection and never answers: give up as a connect timeout would.
    req.setTimeout(TUNNEL_TIMEOUT_MS, () => req.destroy(Object.assign(new Error("the proxy did not answer"), { code: "ETIMEDOUT" })))
    const stop = onAbort(signal, (reason) => {
      req.destroy()
      reject(reason)
    })
    const refused = (status: number | undefined) =>
      new ProxyError(
        route.label,
        "ERR_PROXY_TUNNEL",
        `it refused the tunnel to ${authority} with HTTP ${status ?? "?"}${
          status === 407 ? ` (proxy authentication required: check the user and password in ${route.variable})` : ""
        }`,
        route.variable
      )
    req.once("connect", (res, socket, head) => {
      stop()
      // The tunnel is ours now: no idle timeout on it (a streamed answer may pause for long).
      socket.setTimeout(0)
      if (res.statusCode !== 200) {
        socket.destroy()
        return reject(refused(res.statusCode))
      }
      if (head.length > 0) socket.unshift(head)
      resolve(socket)
    })
    req.once("response", (res) => {
      stop()
      res.destroy()
      reject(refused(res.statusCode))
    })
    req.once("error", (e) => {
      stop()
      reject(new ProxyError(route.label, codeOf(e), `the proxy cannot be reached (${codeOf(e)})`, route.variable))
    })
    req.end()
  })

/** A failure of a request sent direct: what `fetch` rejects with (the code in `cause`). */
const directFailure = (e: unknown) => new TypeError("fetch failed", { cause: e })

const portOf = (url: URL) => (url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port))

/** TLS to the target, over the tunnel (or direct without a route), the certificate checked against the target's name. */
const secure = (
  socket: net.Socket | undefined,
  target: URL,
  route: ProxyRoute | undefined,
  signal: AbortSignal | undefined
): Promise<tls.TLSSocket> =>
  new Promise((resolve, reject) => {
    const host = target.hostname.replace(/^\[|\]$/g, "")
    const s = tls.connect({
      ...(socket === undefined ? { port: portOf(target) } : { socket }),
      host,
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ["http/1.1"]
    })
    const stop = onAbort(signal, (reason) => {
      s.destroy()
      reject(reason)
    })
    s.once("secureConnect", () => {
      stop()
      resolve(s)
    })
    s.once("error", (e) => {
      stop()
      s.destroy()
      reject(
        route === undefined
          ? directFailure(e)
          : new ProxyError(route.label, codeOf(e), `TLS with ${authorityOf(target)} over the tunnel failed (${codeOf(e)})`, route.variable)
      )
    })
  })

/**
 * Sends one request through the proxy (or, without a route, direct with an
 * agent of its own); the answer's head and its body stream.
 */
const exchange = async (out: Outgoing, route: ProxyRoute | undefined, signal: AbortSignal | undefined): Promise<http.IncomingMessage> => {
  const headers: Record<string, string> = {}
  out.headers.forEach((v, k) => (headers[k] = v))
  headers["host"] = out.url.host
  headers["connection"] = "close"
  headers["accept"] ??= "*/*"
  if (out.body !== undefined) headers["content-length"] = String(out.body.byteLength)
  else if (out.method !== "GET" && out.method !== "HEAD") headers["content-length"] = "0"
  let options: http.RequestOptions
  const path = `${out.url.pathname}${out.url.search}`
  if (route === undefined && out.url.protocol === "https:") {
    const socket = await secure(undefined, out.url, undefined, signal)
    options = { method: out.method, path, headers, createConnection: () => socket }
  } else if (route === undefined) {
    options = { host: out.url.hostname.replace(/^\[|\]$/g, ""), port: portOf(out.url), method: out.method, path, headers, agent: false }
  } else if (out.url.protocol === "https:") {
    const socket = await secure(await tunnel(route, out.url, signal), out.url, route, signal)
    options = { method: out.method, path, headers, createConnection: () => socket }
  } else {
    // Plain http: the absolute-form request line (RFC 9112 section 3.2.2) to the proxy itself.
    if (route.authorization !== undefined) headers["proxy-authorization"] = route.authorization
    options = { host: route.host, port: route.port, method: out.method, path: out.url.href, headers, agent: false }
  }
  return new Promise((resolve, reject) => {
    const req = http.request(options)
    const stop = onAbort(signal, (reason) => {
      req.destroy()
      reject(reason)
    })
    req.once("response", (res) => {
      stop()
      resolve(res)
    })
    req.once("error", (e) => {
      stop()
      reject(
        e instanceof ProxyError
          ? e
          : route === undefined
          ? directFailure(e)
          : new ProxyError(route.label, codeOf(e), `the request to ${out.url.host} failed (${codeOf(e)})`, route.variable)
      )
    })
    req.end(out.body)
  })
}

/** The body as a web stream: decoded as `fetch` decodes it, paused while unread, closed on cancel or abort. */
const webBody = (res: http.IncomingMessage, signal: AbortSignal | undefined): ReadableStream<Uint8Array> => {
  const encoding = (res.headers["content-encoding"] ?? "").trim().toLowerCase()
  const source: NodeJS.ReadableStream & { destroy: (e?: Error) => void } = encoding === "gzip" || encoding === "x-gzip"
    ? res.pipe(zlib.createGunzip())
    : encoding === "deflate"
    ? res.pipe(zlib.createInflate())
    : encoding === "br"
    ? res.pipe(zlib.createBrotliDecompress())
    : res
  let stop = () => {}
  return new ReadableStream<Uint8Array>({
    start(controller) {
      stop = onAbort(signal, (reason) => {
        controller.error(reason)
        res.destroy()
        source.destroy()
      })
      source.on("data", (chunk: Buffer) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        if ((controller.desiredSize ?? 1) <= 0) source.pause()
      })
      source.once("end", () => {
        stop()
        controller.close()
      })
      source.once("error", (e: Error) => {
        stop()
        controller.error(e)
      })
      res.once("error", (e: Error) => source.destroy(e))
    },
    pull() {
      source.resume()
    },
    cancel() {
      stop()
      res.destroy()
      source.destroy()
    }
  }, { highWaterMark: 1 })
}

const toResponse = (res: http.IncomingMessage, out: Outgoing, signal: AbortSignal | undefined): Response => {
  const headers = new Headers()
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!)
  const status = res.statusCode ?? 0
  const empty = out.method === "HEAD" || NULL_BODY_STATUS.has(status)
  if (empty) res.resume()
  const response = new Response(empty ? null : webBody(res, signal), { status, statusText: res.statusMessage ?? "", headers })
  Object.defineProperty(response, "url", { value: out.url.href })
  return response
}

/** What a redirect becomes (RFC 9110 section 15.4, as `fetch` does it). */
const redirected = (out: Outgoing, status: number, location: URL): Outgoing => {
  const toGet = status === 303 ? out.method !== "HEAD" : (status === 301 || status === 302) && out.method === "POST"
  const headers = new Headers(out.headers)
  if (location.origin !== out.url.origin) {
    headers.delete("authorization")
    headers.delete("cookie")
  }
  if (toGet) {
    for (const h of ["content-type", "content-length", "content-encoding", "content-language", "content-location"]) headers.delete(h)
  }
  return { url: location, method: toGet ? "GET" : out.method, headers, body: toGet ? undefined : out.body }
}

/**
 * Whether Node's own `fetch` sends through the proxy variables itself
 * (`NODE_USE_ENV_PROXY`, Node 22.21+ and 24): it proxies loopback and has its
 * own `NO_PROXY` rules, so what goes direct is sent here with an agent of its own.
 */
const nodeProxiesItself = (env: ProxyEnv) => {
  const v = (env["NODE_USE_ENV_PROXY"] ?? "").trim()
  return v !== "" && v !== "0" && v.toLowerCase() !== "false"
}

/**
 * Builds the proxy-honouring `fetch` over `env` (read at each request) and
 * `direct`, the `fetch` for requests that go direct (`globalThis.fetch`).
 */
export const makeProxyFetch = (
  env: ProxyEnv = process.env,
  direct: () => typeof globalThis.fetch = () => globalThis.fetch
): typeof globalThis.fetch => {
  const send = async (out: Outgoing, redirect: RequestRedirect, signal: AbortSignal | undefined, hops: number): Promise<Response> => {
    const decision = proxyFor(out.url, env)
    if (decision._tag === "Direct" && !nodeProxiesItself(env)) {
      return direct()(out.url, { method: out.method, headers: out.headers, body: out.body ?? null, redirect, signal: signal ?? null })
    }
    if (decision._tag === "Invalid") throw new ProxyError("(unusable)", "ERR_PROXY_INVALID", decision.message, decision.variable)
    signal?.throwIfAborted()
    const res = await exchange(out, decision._tag === "Proxy" ? decision.route : undefined, signal)
    const status = res.statusCode ?? 0
    const location = res.headers["location"]
    if (status >= 300 && status < 400 && status !== 304 && location !== undefined && redirect !== "manual") {
      res.resume()
      if (redirect === "error") throw new TypeError(`fetch failed: a redirect from ${out.url.host}, and redirect is "error"`)
      if (hops >= MAX_REDIRECTS) throw new TypeError(`fetch failed: more than ${MAX_REDIRECTS} redirects from ${out.url.host}`)
      let next: URL
      try {
        next = new URL(location, out.url)
      } catch {
        throw new TypeError(`fetch failed: a redirect from ${out.url.host} to an invalid URL`)
      }
      if (next.protocol !== "http:" && next.protocol !== "https:") throw new TypeError("fetch failed: a redirect to a non-http URL")
      const response = await send(redirected(out, status, next), redirect, signal, hops + 1)
      Object.defineProperty(response, "redirected", { value: true })
      return response
    }
    return toResponse(res, out, signal)
  }

  return async (input, init) => {
    const href = typeof input === "string" ? input : input instanceof URL ? input.href : input.url
    const url = new URL(href)
    // The common case, no proxy for this URL: exactly what the caller asked, to the platform's fetch.
    if (proxyFor(url, env)._tag === "Direct" && !nodeProxiesItself(env)) return direct()(input, init)
    const request = new Request(input, init)
    const body = request.body === null ? undefined : new Uint8Array(await request.arrayBuffer())
    const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined) ?? undefined
    return send({ url, method: request.method, headers: request.headers, body }, request.redirect, signal, 0)
  }
}
