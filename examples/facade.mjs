// The promise facade: log in if needed (device flow), then a valid token, then one chat call with it.
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
  const token = await client.getValidAccessToken() // refreshed first when due; never print it
  const { apiBaseUrl } = await client.status()
  const response = await fetch(`${apiBaseUrl}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "kimi-for-coding", messages: [{ role: "user", content: prompt }] })
  })
  if (!response.ok) throw new Error(`Kimi answered ${response.status}`)
  const answer = await response.json()
  console.log(answer.choices[0].message.content)
} finally {
  await client.dispose()
}
