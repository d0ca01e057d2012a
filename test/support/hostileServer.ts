/**
 * A misbehaving OAuth server on loopback: a huge `Content-Length`, an endless
 * body at full speed, a body dripped slower than any deadline, redirects, and
 * JSON answers of the test's choosing. Counts what it sent and sees whether the
 * client hung up, so a test can prove the client stopped reading.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as zlib from "node:zlib"

/** How the server answers every request. */
export type Hostile =
  | { readonly kind: "huge-length" }
  | { readonly kind: "endless" }
  | { readonly kind: "slow-drip"; readonly everyMillis?: number }
  | { readonly kind: "redirect"; readonly status?: number; readonly location: string }
  | { readonly kind: "json"; readonly status?: number; readonly body: unknown; readonly headers?: Record<string, string> }
  | { readonly kind: "text"; readonly status: number; readonly body: string }
  /** An endless gzip body of zeros (concatenated members): a few KiB on the wire per 16 MiB unpacked. */
  | { readonly kind: "gzip-bomb" }
  /** 1 MiB of response headers. */
  | { readonly kind: "huge-headers" }
  /** Echoes the refresh token it was sent in every encoding: raw, URL-encoded, base64, base64url, JSON-escaped. */
  | { readonly kind: "echo"; readonly status?: number }

/** A running hostile server. */
export interface HostileServer {
  readonly url: string
  /** Requests received (method and path). */
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly headers: http.IncomingHttpHeaders; readonly body: string }>
  /** Body bytes written so far, over all responses. */
  readonly sentBytes: () => number
  /** Connections the client closed before the body ended. */
  readonly hangUps: () => number
  /** Replaces the behaviour. */
  setMode: (mode: Hostile) => void
  readonly close: () => Promise<void>
}

const CHUNK = Buffer.alloc(64 * 1024, "a")
let bomb: Buffer | undefined
/** One gzip member of 16 MiB of zeros (about 16 KiB), made on first use. */
const bombMember = () => (bomb ??= zlib.gzipSync(Buffer.alloc(16 * 1024 * 1024), { level: 9 }))

/** Starts a hostile server on 127.0.0.1 with a random port. */
export const startHostileServer = async (initial: Hostile): Promise<HostileServer> => {
  let mode = initial
  let sent = 0
  let hangUps = 0
  const requests: HostileServer["requests"] = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", () => {
      requests.push({ method: req.method ?? "", path: (req.url ?? "").split("?")[0] ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") })
      let finished = false
      res.on("finish", () => (finished = true))
      res.on("close", () => {
        if (!finished) hangUps++
      })
      const pump = () => {
        while (!res.destroyed && res.write(CHUNK)) sent += CHUNK.length
        if (!res.destroyed) sent += CHUNK.length
      }
      switch (mode.kind) {
        case "huge-length":
          res.writeHead(200, { "content-type": "application/json", "content-length": String(2 * 1024 ** 3) })
          res.on("drain", pump)
          pump()
          return
        case "endless":
          res.writeHead(200, { "content-type": "application/json" })
          res.on("drain", pump)
          pump()
          return
        case "slow-drip": {
          res.writeHead(200, { "content-type": "application/json" })
          res.write("{")
          const timer = setInterval(() => {
            if (res.destroyed) return clearInterval(timer)
            res.write(" ")
            sent += 1
          }, mode.everyMillis ?? 100)
          res.on("close", () => clearInterval(timer))
          return
        }
        case "redirect":
          res.writeHead(mode.status ?? 302, { location: mode.location, "content-type": "text/plain" })
          res.end("moved")
          return
        case "json": {
          const text = JSON.stringify(mode.body)
          res.writeHead(mode.status ?? 200, { "content-type": "application/json", ...mode.headers })
          res.end(text)
          return
        }
        case "text":
          res.writeHead(mode.status, { "content-type": "text/html" })
          res.end(mode.body)
          return
        case "gzip-bomb": {
          res.writeHead(200, { "content-type": "application/json", "content-encoding": "gzip" })
          const member = bombMember()
          const pumpBomb = () => {
            while (!res.destroyed && res.write(member)) sent += member.length
          }
          res.on("drain", pumpBomb)
          pumpBomb()
          return
        }
        case "huge-headers":
          res.writeHead(200, { "content-type": "application/json", "x-junk": "a".repeat(1024 * 1024) })
          res.end("{}")
          return
        case "echo": {
          const sentToken = new URLSearchParams(Buffer.concat(chunks).toString("utf8")).get("refresh_token") ?? ""
          const status = mode.status ?? 400
          const description = `raw ${sentToken} url ${encodeURIComponent(sentToken)} b64 ${Buffer.from(`rt=${sentToken}`).toString("base64")} ` +
            `b64url ${Buffer.from(sentToken).toString("base64url")} json ${JSON.stringify({ t: sentToken }).replace(/\//g, "\\/")}`
          res.writeHead(status, { "content-type": "application/json" })
          res.end(JSON.stringify({ error: "invalid_request", error_description: description, refreshToken: sentToken }))
          return
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    sentBytes: () => sent,
    hangUps: () => hangUps,
    setMode: (m) => {
      mode = m
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
