// Load benchmark case: opencode-anthropic-auth, imported and its plugin function
// called the way OpenCode does at start-up. argv[2] = its entry file.
const m = await import(process.argv[2])
const hooks = await m.AnthropicAuthPlugin({ client: {} })
if (typeof hooks?.auth?.loader !== "function") throw new Error("unexpected plugin shape")
process.stdout.write(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS }) + "\n")
