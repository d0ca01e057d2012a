// The promise facade: log in if needed (device flow), then a valid token, the account's models and
// the plan's quota, then one chat call through client.fetch (the bearer and Kimi's identity headers
// added, a 401 healed once). A failure prints its message (what to do), not a stack.
// Run: npm run build && node examples/facade.mjs [--region global]
import { KimiAuthError, KimiOAuthClient } from "opencode-kimi-auth"
import { options, prompt, shown } from "./options.mjs"

const client = new KimiOAuthClient(options)
try {
  if (!(await client.status()).loggedIn) {
    const session = await client.authorize()
    console.log(`Open ${session.verificationUriComplete ?? session.verificationUri} and confirm the code ${session.userCode}`)
    await session.waitForCompletion()
    console.log("Logged in.")
  }
  const token = await client.getValidAccessToken() // for your own HTTP client; never print it
  console.error(`(a valid access token of ${token.length} characters)`)
  const usage = await client.usage() // the same windows as `kimi-auth usage`
  console.log(`usage: ${usage.windows.map((w) => `${w.label} ${shown(w)}`).join(", ") || "no windows"}`)
  const { apiBaseUrl } = await client.status()
  const models = await (await client.fetch(`${apiBaseUrl}/models`)).json()
  console.log(`models: ${models.data.map((m) => m.id).join(", ")}`)
  const response = await client.fetch(`${apiBaseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: prompt }] })
  })
  const answer = await response.json()
  if (!response.ok) throw new Error(answer.error?.message ?? `Kimi answered ${response.status}`)
  console.log(answer.choices[0].message.content)
} catch (e) {
  if (!KimiAuthError.is(e)) throw e
  console.error(`error: ${e.message}`) // e.code: ACCESS_DENIED, NOT_LOGGED_IN, …
  process.exitCode = 1
} finally {
  await client.dispose()
}
