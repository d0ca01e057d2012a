// The client of the V2 request-hook benchmark (under Bun): N sequential small requests, each
// built as OpenCode 2's preview does (a `Request`), passed through the plugin's
// session.hook("http.request") and ("http.response") around the send, against plain fetch
// sending the same headers and body. argv: <url> <requests> <runs> <block>.
import { makeV2Ctx } from "./v2-ctx.mjs"
const [url, nArg, runsArg, blockArg] = process.argv.slice(2)
const N = Number(nArg)
const RUNS = Number(runsArg)
const BLOCK = Number(blockArg)
const m = await import("opencode-kimi-auth/server")
const { ctx, hooks } = makeV2Ctx()
const cleanup = await m.default.setup(ctx)
const [onRequest] = hooks["http.request"]
const [onResponse] = hooks["http.response"]
const model = { id: "kimi-for-coding", providerID: "kimi-code-plan-cn" }
const body = JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }], stream: false })
const hostRequest = () => new Request(url, { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer row-access" }, body })
const viaHooks = async () => {
  const event = { sessionID: "ses_bench", agent: "build", model, request: hostRequest() }
  await onRequest(event)
  const sent = event.request
  const after = { sessionID: "ses_bench", agent: "build", model, request: sent, response: await fetch(sent.clone()) }
  await onResponse(after)
  return after.response
}
// The headers the hook put on (identity + bearer) and its body: plain fetch sends the same.
const probe = { model, request: hostRequest() }
await onRequest(probe)
const sameHeaders = Object.fromEntries(probe.request.headers)
const sameBody = await probe.request.clone().text()
const plain = () => fetch(url, { method: "POST", headers: sameHeaders, body: sameBody })
const one = async (f) => {
  const res = await f()
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  await res.text()
}
const timeBlock = async (f, n) => {
  const t = performance.now()
  for (let i = 0; i < n; i++) await one(f)
  return performance.now() - t
}
await timeBlock(plain, 200)
await timeBlock(viaHooks, 200)
const runs = []
const variants = [["plain", plain], ["hooks", viaHooks]]
for (let r = 0; r < RUNS; r++) {
  const total = { plain: 0, hooks: 0 }
  for (let done = 0, b = 0; done < N; done += BLOCK, b++) {
    const n = Math.min(BLOCK, N - done)
    for (let i = 0; i < variants.length; i++) {
      const [name, f] = variants[(i + b + r) % variants.length]
      total[name] += await timeBlock(f, n)
    }
  }
  runs.push({ plainMillis: total.plain, hooksMillis: total.hooks, ratio: total.hooks / total.plain })
}
await cleanup?.()
process.stdout.write(JSON.stringify({ runs }) + "\n")
process.exit(0)
