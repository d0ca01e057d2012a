// Load benchmark case: opencode-kimi-auth. argv[2] = the module to import
// ("opencode-kimi-auth/server" resolves exports["./server"] by package
// self-reference: the entry OpenCode loads), argv[3] = what to do:
//   import: import only
//   server: import, then `server()` as OpenCode does at start-up
//   config: import, `server()`, then the `config` hook (OpenCode runs it at start-up too)
const [spec, mode] = process.argv.slice(2)
const m = await import(spec)
if (mode !== "import") {
  const hooks = await m.default.server({ client: {} }, {})
  if (typeof hooks?.auth?.loader !== "function") throw new Error("unexpected plugin shape")
  if (mode === "config") {
    const config = {}
    await hooks.config(config)
    if (!config.provider?.kimi) throw new Error("config hook did not define the provider")
    await hooks.dispose()
  }
}
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
