// Load benchmark case: the OpenCode 2 entry. Under Bun, "opencode-kimi-auth/server" resolves the
// `bun` condition of exports["./server"] (dist/bundle/server-v2.js), as OpenCode 2 does; then
// `setup(ctx)` with a stand-in ctx (bench/v2-ctx.mjs). argv[2] = the module, argv[3] = import | setup.
import { makeV2Ctx } from "../v2-ctx.mjs"
const [spec, mode] = process.argv.slice(2)
const m = await import(spec)
if (typeof m.default?.setup !== "function") throw new Error(`${spec} has no default { id, setup } (is the bun condition resolved?)`)
if (mode !== "import") {
  const { ctx, methods, hooks } = makeV2Ctx()
  await m.default.setup(ctx)
  if (methods.length !== 2 || !hooks["http.request"]) throw new Error("setup registered less than expected")
}
// Start-up ends when `setup` returns (the host goes on); the account's model list that `setup` starts in
// the background is not waited for, nor the cleanup the host runs at its exit.
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
process.exit(0)
