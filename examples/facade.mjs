// The promise facade: log in if needed (device flow), then a valid token, then one chat call through
// client.fetch (the bearer and Kimi's identity headers added, a 401 healed once).
// Run: npm run build && node examples/facade.mjs [--region global]
import { KimiOAuthClient } from "opencode-kimi-auth"
import { options, prompt } from "./options.mjs"

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
  const { apiBaseUrl } = await client.status()
  const response = await client.fetch(`${apiBaseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: prompt }] })
  })
  const answer = await response.json()
  if (!response.ok) throw new Error(answer.error?.message ?? `Kimi answered ${response.status}`)
  console.log(answer.choices[0].message.content)
} finally {
  await client.dispose()
}
