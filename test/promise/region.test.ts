/**
 * The facade's `region` option: it picks the default hosts, a login made with
 * it is stored with its region (against the emulator, hosts given
 * explicitly), and `status()` reports region and hosts. No secret involved.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type StartedEmulator, start } from "../../src/emulator/KimiEmulator.js"
import { type KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"

let dir: string
let emulator: StartedEmulator | undefined
const clients: Array<KimiOAuthClient> = []
const saved = ["KIMI_OAUTH_HOST", "KIMI_CODE_OAUTH_HOST", "KIMI_CODE_BASE_URL"].map((k) => [k, process.env[k]] as const)

beforeEach(() => {
  dir = makeTemp("kimi-facade-region-")
  for (const [k] of saved) delete process.env[k]
})
afterEach(async () => {
  for (const c of clients.splice(0)) await c.dispose()
  await emulator?.close()
  emulator = undefined
  rmTemp(dir)
  for (const [k, v] of saved) if (v !== undefined) process.env[k] = v
})

const client = (options: ConstructorParameters<typeof KimiOAuthClient>[0]) => {
  const c = new KimiOAuthClient({ storageDir: dir, ...options })
  clients.push(c)
  return c
}

describe("KimiOAuthClient region", () => {
  it("picks the region's hosts: mainland-cn by default (kimi.com), global (kimi.ai)", async () => {
    expect(await client({}).status()).toMatchObject({
      loggedIn: false,
      region: "mainland-cn",
      oauthHost: "https://auth.kimi.com",
      apiBaseUrl: "https://api.kimi.com/coding/v1"
    })
    expect(await client({ region: "global" }).status()).toMatchObject({
      loggedIn: false,
      region: "global",
      oauthHost: "https://auth.kimi.ai",
      apiBaseUrl: "https://api.kimi.ai/coding/v1"
    })
  })

  it("a login made with region global is stored with it; a client of the other region still refreshes at its issuer", async () => {
    emulator = await start({ interval: 1, autoApproveAfterMillis: 200 })
    const global = client({ region: "global", oauthHost: emulator.oauthHost, apiBaseUrl: emulator.apiBaseUrl })
    const session = await global.authorize()
    expect(session.verificationUri).toBe(`${emulator.url}/device`)
    await session.waitForCompletion()
    const stored = JSON.parse(fs.readFileSync(path.join(dir, "oauth.json"), "utf8"))
    expect(stored).toMatchObject({ region: "global", oauth_host: emulator.oauthHost, api_base_url: emulator.apiBaseUrl })
    expect(await global.status()).toMatchObject({ loggedIn: true, region: "global", oauthHost: emulator.oauthHost })

    // A default (mainland-cn) client reading the same storage: the login keeps its region and issuer.
    const other = client({})
    expect(await other.status()).toMatchObject({ loggedIn: true, region: "global", oauthHost: emulator.oauthHost })
    emulator.expireAccessTokens()
    fs.writeFileSync(path.join(dir, "oauth.json"), JSON.stringify({ ...stored, expires_at: Math.floor(Date.now() / 1000) - 1 }), { mode: 0o600 })
    const token = await other.getValidAccessToken()
    expect(token).toMatch(/^emu_at_/)
    expect(emulator.stats().refreshes).toBe(1)
  })

  it("an unknown region is a CONFIG_ERROR that names the valid ones", async () => {
    const e = (await client({ region: "mars" as never }).status().catch((x: unknown) => x)) as KimiAuthError
    expect(e.code).toBe("CONFIG_ERROR")
    expect(e.message).toMatch(/mainland-cn/)
    expect(e.message).toMatch(/global/)
  })
})
