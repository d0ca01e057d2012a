// The seed README's "Types": its OAuthConfig fields, as a value of the package's own OAuthConfig,
// type-checked (strict, no skipLibCheck) where effect is not installed. Never run.
import { KimiAuthError, KimiOAuthClient, type OAuthConfig } from "opencode-kimi-auth"

const scopes: string[] = ["kimi-code"] // the seed's type: a mutable string[]
const config: OAuthConfig = {
  clientId: "your-client-id",
  clientSecret: "your-secret",
  scopes,
  tokenFilePath: "/tmp/kimi/oauth.json"
}
const client = new KimiOAuthClient(config)
const session = await client.authorize()
const uri: string = session.verificationUri
const code: string = session.userCode
const token: string = await client.getValidAccessToken()
// The facade's other answers are real types, not `any` from an unresolved effect import.
const used: number | undefined = (await client.usage()).windows[0]?.used
// @ts-expect-error `usage()` is typed: a window's label is a string, not a number
const wrong: number = (await client.usage()).windows[0]!.label
// Durations in plain values; a string that is not one is refused.
new KimiOAuthClient({ region: "global", refreshWindow: "30 seconds", requestTimeout: 10_000, tokenManager: { retryMaxDelay: { seconds: 8 } } })
// @ts-expect-error not a duration
new KimiOAuthClient({ refreshWindow: "soon" })
const failure: unknown = undefined
if (KimiAuthError.is(failure)) console.log(failure.code satisfies string)
console.log(uri, code, token.length, used, wrong)
await client.dispose()
