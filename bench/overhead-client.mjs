// The client of the overhead benchmark (runs under Node or Bun): N sequential
// small requests to a loopback server through the plugin's `fetch` (valid
// token on disk) and through plain `fetch`, interleaved in blocks.
// argv: <url> <module> <requests> <runs> <block>. The storage folder comes from OPENCODE_KIMI_AUTH_DIR.
const [url, spec, nArg, runsArg, blockArg] = process.argv.slice(2)
const N = Number(nArg)
const RUNS = Number(runsArg)
const BLOCK = Number(blockArg)
const m = await import(spec)
// The first plugin the module exports (a default `{ id, server }`, else the first export of that shape).
const plugin = typeof m.default?.server === "function" ? m.default : Object.values(m).find((p) => typeof p?.server === "function")
const hooks = await plugin.server({ client: {} }, {})
const provider = await hooks.auth.loader(async () => undefined, {})
const pluginFetch = provider.fetch
const body = JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
const init = () => ({ method: "POST", headers: { "content-type": "application/json", authorization: "Bearer kimi-oauth" }, body })

// The headers the plugin sent (identity + bearer), as the server saw them: a third variant, plain
// fetch sending those same headers, splits the plugin's cost into wire bytes and code.
await (await pluginFetch(url, init())).text()
const seen = await (await fetch(new URL("/seen-headers", url))).json()
const sameHeaders = {}
for (const [k, v] of Object.entries(seen)) if (!["host", "connection", "content-length", "accept", "accept-language", "sec-fetch-mode", "accept-encoding"].includes(k)) sameHeaders[k] = v
const plainSameHeaders = (u, i) => globalThis.fetch(u, { ...i, headers: { ...sameHeaders } })

const one = async (f) => {
  const res = await f(url, init())
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
  await res.text()
}
const timeBlock = async (f, n) => {
  const t = performance.now()
  for (let i = 0; i < n; i++) await one(f)
  return performance.now() - t
}
// Warm-up: JIT, connection pool, the plugin's runtime and token cache.
await timeBlock(globalThis.fetch, 200)
await timeBlock(pluginFetch, 200)
await timeBlock(plainSameHeaders, 200)
const runs = []
const variants = [["plain", globalThis.fetch], ["plugin", pluginFetch], ["sameHeaders", plainSameHeaders]]
for (let r = 0; r < RUNS; r++) {
  const total = { plain: 0, plugin: 0, sameHeaders: 0 }
  for (let done = 0, b = 0; done < N; done += BLOCK, b++) {
    const n = Math.min(BLOCK, N - done)
    // Rotate which variant goes first in each block.
    for (let i = 0; i < variants.length; i++) {
      const [name, f] = variants[(i + b + r) % variants.length]
      total[name] += await timeBlock(f, n)
    }
  }
  runs.push({ plainMillis: total.plain, pluginMillis: total.plugin, sameHeadersMillis: total.sameHeaders, ratio: total.plugin / total.plain, sameHeadersRatio: total.sameHeaders / total.plain })
}
await hooks.dispose()
process.stdout.write(JSON.stringify({ runs }) + "\n")
process.exit(0)
