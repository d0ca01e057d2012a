// Runs inside a folder where only the packed opencode-kimi-auth is installed
// (no effect, nothing else): the emulator, the promise facade and the OpenCode
// plugin entry, each through its package export. Prints one JSON line.
// argv[2] = a storage folder for the login.
import * as fs from "node:fs"
import * as path from "node:path"
import { start } from "opencode-kimi-auth/emulator"
import { KimiAuthError, KimiOAuthClient } from "opencode-kimi-auth/client"
import * as server from "opencode-kimi-auth/server"

const storageDir = process.argv[2]
const emulator = await start({ autoApproveAfterMillis: 200, interval: 1 })
const endpoints = { oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl }
const out = { oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl }
try {
  // The facade: a full device login, then a token.
  const client = new KimiOAuthClient({ ...endpoints, storageDir })
  out.before = (await client.status()).loggedIn
  const session = await client.authorize()
  await session.waitForCompletion()
  const token = await client.getValidAccessToken()
  out.after = (await client.status()).loggedIn
  out.tokenMatchesFile = token === JSON.parse(fs.readFileSync(path.join(storageDir, "oauth.json"), "utf8")).access_token
  await client.dispose()

  // A typed failure from the facade.
  const empty = new KimiOAuthClient({ ...endpoints, storageDir: path.join(storageDir, "none") })
  const failure = await empty.getValidAccessToken().then(() => undefined, (e) => e)
  out.failure = { is: KimiAuthError.is(failure), instanceOf: failure instanceof KimiAuthError, code: failure?.code }
  await empty.dispose()

  // The OpenCode entry, called as OpenCode calls it: server(), the config hook, the loader's fetch.
  // Its plugin: a default `{ id, server }`, else the first export of that shape (one per region).
  const plugin = typeof server.default?.server === "function" ? server.default : Object.values(server).find((p) => typeof p?.server === "function")
  const hooks = await plugin.server({ client: {} }, { ...endpoints, storageDir })
  const config = {}
  await hooks.config(config)
  out.pluginId = plugin.id.split("/")[0]
  out.provider = Object.values(config.provider ?? {})[0]?.options?.baseURL
  const provider = await hooks.auth.loader(async () => undefined, {})
  const res = await provider.fetch(`${emulator.apiBaseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer kimi-oauth" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: "hi" }] })
  })
  out.chatStatus = res.status
  out.chatBearerIsToken = emulator.requests("/coding/v1/chat/completions").at(-1)?.bearer === token
  await res.text()
  await hooks.dispose?.()
} finally {
  await emulator.close()
}
process.stdout.write(JSON.stringify(out) + "\n")
