// The loopback server of the overhead benchmark: answers every request with a
// small JSON body. Prints its URL, exits when stdin closes or after 10 minutes.
import { createServer } from "node:http"

const body = JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion", choices: [{ index: 0, message: { role: "assistant", content: "ok" } }] })
let seen
const server = createServer((req, res) => {
  if (req.url === "/seen-headers") {
    res.writeHead(200, { "content-type": "application/json" })
    res.end(JSON.stringify(seen ?? null))
    return
  }
  if (seen === undefined && req.headers["x-msh-device-id"] !== undefined) seen = req.headers
  req.resume()
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    res.end(body)
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`http://127.0.0.1:${server.address().port}\n`)
})
process.stdin.resume()
process.stdin.on("end", () => process.exit(0))
setTimeout(() => process.exit(0), 10 * 60_000).unref()
