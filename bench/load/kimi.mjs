// Load benchmark case: opencode-kimi-auth. argv[2] = the module to import
// ("opencode-kimi-auth/server" resolves exports["./server"] by package
// self-reference: the entry OpenCode loads), argv[3] = what to do:
//   import: import only
//   server: import, then `server()` of every plugin the module exports, as OpenCode does at start-up
//   config: import, `server()`, then each `config` hook (OpenCode runs it at start-up too)
// The module's plugins: a default `{ id, server }`, else every export of that shape (OpenCode calls each).
const [spec, mode] = process.argv.slice(2)
const m = await import(spec)
const plugins = typeof m.default?.server === "function" ? [m.default] : Object.values(m).filter((p) => typeof p?.server === "function")
if (plugins.length === 0) throw new Error(`${spec} exports no plugin`)
if (mode !== "import") {
  const all = []
  for (const plugin of plugins) all.push(await plugin.server({ client: {} }, undefined))
  for (const hooks of all) if (typeof hooks?.auth?.loader !== "function") throw new Error("unexpected plugin shape")
  if (mode === "config") {
    // One config object for every instance, as OpenCode passes its own.
    const config = {}
    for (const hooks of all) {
      if (typeof hooks.config !== "function") throw new Error("no config hook")
      await hooks.config(config)
    }
    for (const hooks of all) await hooks.dispose?.()
  }
}
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
