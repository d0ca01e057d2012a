// Load benchmark case: opencode-kimi-auth. argv[2] = the module to import
// ("opencode-kimi-auth/server" resolves OpenCode's entry by self-reference,
// as OpenCode does: exports["./server"]), argv[3] = what to do:
//   import: import only
//   server: import, then `server()` as OpenCode does at start-up: the default
//           `{ id, server }` if there is one, else every export (the OpenCode
//           entry exports one instance per Kimi region)
//   config: import, `server()`, then every `config` hook (OpenCode runs them at start-up too)
const [spec, mode] = process.argv.slice(2)
const m = await import(spec)
if (mode !== "import") {
  const plugins = m.default && typeof m.default.server === "function" ? [m.default] : Object.values(m)
  const all = []
  for (const p of plugins) all.push(await p.server({ client: {} }, {}))
  for (const hooks of all) if (typeof hooks?.auth?.loader !== "function") throw new Error("unexpected plugin shape")
  if (mode === "config") {
    const config = {}
    for (const hooks of all) await hooks.config(config)
    for (const hooks of all) await hooks.dispose()
  }
}
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
