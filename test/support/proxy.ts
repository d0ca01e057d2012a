/**
 * A proxy on loopback that is the only way to reach a fake https host, for
 * the proxy tests: a test CA and a certificate for `kimi.test` (made with
 * `openssl` at test time), a TLS front that ends TLS for that name and hands
 * the bytes to a plain-http server (the emulator), and an HTTP proxy
 * (`CONNECT` and absolute-form requests) that alone knows where `kimi.test`
 * is. Nothing else resolves `kimi.test`: a client that skips the proxy fails.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import * as tls from "node:tls"

/** The fake host: `.test` is reserved (RFC 6761) and resolves nowhere. */
export const FAKE_HOST = "kimi.test"

/** A test CA and a leaf certificate for {@link FAKE_HOST}, as PEM files in `dir`. */
export interface TestCerts {
  readonly caFile: string
  readonly key: string
  readonly cert: string
}

/** Makes a throwaway CA and a `kimi.test` certificate it signs (EC P-256, valid two days). */
export const makeTestCerts = (dir: string): TestCerts => {
  const f = (name: string) => path.join(dir, name)
  const ossl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  ossl("req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=kimi-auth test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
  ossl("req", ...ec, "-keyout", f("leaf.key"), "-out", f("leaf.csr"), "-subj", `/CN=${FAKE_HOST}`)
  fs.writeFileSync(f("leaf.ext"), `subjectAltName=DNS:${FAKE_HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`)
  ossl("x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial",
    "-out", f("leaf.pem"), "-days", "2", "-extfile", f("leaf.ext"))
  return { caFile: f("ca.pem"), key: fs.readFileSync(f("leaf.key"), "utf8"), cert: fs.readFileSync(f("leaf.pem"), "utf8") }
}

/** Whether `openssl` can be run here. */
export const hasOpenssl = (): boolean => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

const listen = (server: net.Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port))
  })

const closing = (server: net.Server, sockets: Set<net.Socket>) => () =>
  new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  })

const track = (server: net.Server) => {
  const sockets = new Set<net.Socket>()
  server.on("connection", (s: net.Socket) => {
    sockets.add(s)
    s.once("close", () => sockets.delete(s))
  })
  return sockets
}

/** A TLS front on loopback: ends TLS with `certs` and pipes the bytes to `127.0.0.1:backendPort`. */
export const startTlsFront = async (certs: TestCerts, backendPort: number) => {
  const server = tls.createServer({ key: certs.key, cert: certs.cert }, (socket) => {
    const back = net.connect(backendPort, "127.0.0.1")
    socket.pipe(back).pipe(socket)
    const end = () => {
      socket.destroy()
      back.destroy()
    }
    socket.once("error", end)
    back.once("error", end)
  })
  // Handshake failures (a client that does not trust the CA) are the client's to report.
  server.on("tlsClientError", () => {})
  const sockets = new Set<net.Socket>()
  server.on("secureConnection", (s) => {
    sockets.add(s)
    s.once("close", () => sockets.delete(s))
  })
  const port = await listen(server)
  return { port, close: closing(server, sockets) }
}

/** What the proxy was asked. */
export interface ProxiedRequest {
  /** `CONNECT` for a tunnel, else the method of an absolute-form request. */
  readonly method: string
  /** `host:port` of a tunnel, the absolute URL of a plain request. */
  readonly target: string
  /** The `Proxy-Authorization` header as received. */
  readonly proxyAuthorization: string | undefined
}

/** A running test proxy. */
export interface TestProxy {
  readonly port: number
  /** `http://127.0.0.1:port` (add credentials with {@link TestProxy.urlWith}). */
  readonly url: string
  readonly urlWith: (user: string, password: string) => string
  /** Every request, oldest first. */
  readonly requests: Array<ProxiedRequest>
  readonly close: () => Promise<void>
}

/**
 * An HTTP proxy on loopback. `routes` maps `host:port` (what a client asks
 * for) to a loopback port; anything else gets `502`. With `credentials`,
 * requests without the matching `Proxy-Authorization: Basic` get `407`.
 */
export const startProxy = async (
  routes: Readonly<Record<string, number>>,
  options: { readonly credentials?: { readonly user: string; readonly password: string } } = {}
): Promise<TestProxy> => {
  const requests: Array<ProxiedRequest> = []
  const expected = options.credentials === undefined
    ? undefined
    : `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString("base64")}`
  const allowed = (auth: string | undefined) => expected === undefined || auth === expected

  const server = http.createServer((req, res) => {
    // Absolute form: `GET http://host:port/path HTTP/1.1`.
    const auth = req.headers["proxy-authorization"]
    requests.push({ method: req.method ?? "", target: req.url ?? "", proxyAuthorization: auth })
    if (!allowed(auth)) {
      res.writeHead(407, { "proxy-authenticate": "Basic realm=\"test\"", connection: "close" }).end()
      return
    }
    let target: URL
    try {
      target = new URL(req.url ?? "")
    } catch {
      res.writeHead(400, { connection: "close" }).end("absolute-form expected")
      return
    }
    const port = routes[`${target.hostname}:${target.port || "80"}`]
    if (port === undefined) {
      res.writeHead(502, { connection: "close" }).end("unknown host")
      return
    }
    const headers = { ...req.headers }
    delete headers["proxy-authorization"]
    const upstream = http.request(
      { host: "127.0.0.1", port, method: req.method, path: `${target.pathname}${target.search}`, headers, agent: false },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers)
        up.pipe(res)
      }
    )
    upstream.once("error", () => res.destroy())
    // The client went away (a cancelled body): so does the upstream connection.
    res.once("close", () => upstream.destroy())
    req.pipe(upstream)
  })
  server.on("connect", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const auth = req.headers["proxy-authorization"]
    requests.push({ method: "CONNECT", target: req.url ?? "", proxyAuthorization: auth })
    socket.once("error", () => socket.destroy())
    if (!allowed(auth)) {
      socket.end("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
      return
    }
    const port = routes[req.url ?? ""]
    if (port === undefined) {
      socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
      return
    }
    const upstream = net.connect(port, "127.0.0.1", () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n")
      if (head.length > 0) upstream.write(head)
      socket.pipe(upstream).pipe(socket)
    })
    upstream.once("error", () => socket.destroy())
    socket.once("close", () => upstream.destroy())
  })
  const sockets = track(server)
  const port = await listen(server)
  const url = `http://127.0.0.1:${port}`
  return {
    port,
    url,
    urlWith: (user, password) => `http://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}`,
    requests,
    close: closing(server, sockets)
  }
}

/** A loopback port nothing listens on (bound, then closed). */
export const deadPort = async (): Promise<number> => {
  const server = net.createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}
