// One process of the cross-process refresh storm: loads the library, says
// "ready", waits for "go" on stdin, then runs N concurrent getValidAccessToken
// callers (the facade bundle, as a Node user imports it) and prints what they got. argv: <callers> <storageDir> <oauthHost>
import { KimiOAuthClient } from "opencode-kimi-auth/client"

const [n, storageDir, oauthHost] = process.argv.slice(2)
const client = new KimiOAuthClient({ storageDir, oauthHost })
process.stdout.write("ready\n")
await new Promise((resolve) => process.stdin.once("data", resolve))
const results = await Promise.allSettled(Array.from({ length: Number(n) }, () => client.getValidAccessToken()))
await client.dispose()
const ok = results.filter((r) => r.status === "fulfilled").map((r) => r.value)
const errors = results.filter((r) => r.status === "rejected").map((r) => r.reason?.code ?? String(r.reason))
process.stdout.write(JSON.stringify({ ok: ok.length, tokens: [...new Set(ok)], errors: [...new Set(errors)], failed: errors.length }) + "\n")
process.exit(0)
