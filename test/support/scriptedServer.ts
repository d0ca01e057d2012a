/**
 * A scripted HTTP server on loopback for integration tests: every request is
 * recorded (method, path, headers, form or JSON body, arrival time) and
 * answered by a handler the test supplies.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** One request the server saw. */
export interface SeenRequest {
  readonly method: string
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  readonly form: Record<string, string>
  readonly at: number
}

/** What a handler answers. */
export interface Reply {
  readonly status: number
  readonly body?: unknown
  readonly headers?: Record<string, string>
  /** Destroy the connection instead of answering. */
  readonly drop?: boolean
}

/** A running scripted server. */
export interface ScriptedServer {
  readonly url: string
  readonly requests: Array<SeenRequest>
  readonly close: () => Promise<void>
}

/** Starts a server on 127.0.0.1 with a random port. */
export const startScriptedServer = async (
  handler: (req: SeenRequest, all: ReadonlyArray<SeenRequest>) => Reply | Promise<Reply>
): Promise<ScriptedServer> => {
  const requests: Array<SeenRequest> = []
  const server = http.createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => chunks.push(c))
    req.on("end", async () => {
      const body = Buffer.concat(chunks).toString("utf8")
      const seen: SeenRequest = {
        method: req.method ?? "",
        path: (req.url ?? "").split("?")[0] ?? "",
        headers: req.headers,
        body,
        form: (req.headers["content-type"] ?? "").includes("x-www-form-urlencoded")
          ? Object.fromEntries(new URLSearchParams(body))
          : {},
        at: Date.now()
      }
      requests.push(seen)
      try {
        const reply = await handler(seen, requests)
        if (reply.drop) {
          req.socket.destroy()
          return
        }
        const text = reply.body === undefined ? "" : typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body)
        res.writeHead(reply.status, {
          "content-type": typeof reply.body === "string" ? "text/plain" : "application/json",
          ...reply.headers
        })
        res.end(text)
      } catch (e) {
        res.writeHead(500)
        res.end(String(e))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}
