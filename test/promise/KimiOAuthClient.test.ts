/** The promise facade against a scripted loopback OAuth server and real files. */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type Reply, type ScriptedServer, startScriptedServer } from "../support/scriptedServer.js"

let dir: string
let server: ScriptedServer | undefined
let client: KimiOAuthClient | undefined

beforeEach(() => {
  dir = makeTemp("kimi-facade-")
})
afterEach(async () => {
  await client?.dispose()
  client = undefined
  await server?.close()
  server = undefined
  rmTemp(dir)
})

const pending: Reply = { status: 400, body: { error: "authorization_pending" } }
const tokensReply = (n: number): Reply => ({
  status: 200,
  body: { access_token: `at-${n}`, refresh_token: `rt-${n}`, expires_in: 900, token_type: "Bearer", scope: "kimi-code" }
})

const oauth = (polls: ReadonlyArray<Reply>) =>
  startScriptedServer((req, all) => {
    if (req.path === "/api/oauth/device_authorization") {
      return {
        status: 200,
        body: {
          device_code: "dc",
          user_code: "ABCD-EFGH",
          verification_uri: `${server!.url}/device`,
          verification_uri_complete: `${server!.url}/device?user_code=ABCD-EFGH`,
          expires_in: 60,
          interval: 1
        }
      }
    }
    if (req.form["grant_type"] === "refresh_token") return tokensReply(100)
    const n = all.filter((r) => r.form["grant_type"]?.includes("device_code")).length
    return polls[Math.min(n - 1, polls.length - 1)]!
  })

const make = (extra: Record<string, unknown> = {}) =>
  (client = new KimiOAuthClient({ oauthHost: server!.url, storageDir: dir, clientSecret: "ignored", scopes: ["kimi-code"], ...extra }))

describe("KimiOAuthClient", () => {
  it("authorize, wait, get a token, status, logout", async () => {
    server = await oauth([pending, tokensReply(1)])
    const c = make()
    const session = await c.authorize()
    expect(session.userCode).toBe("ABCD-EFGH")
    expect(session.verificationUri).toBe(`${server.url}/device`)
    expect(session.verificationUriComplete).toBe(`${server.url}/device?user_code=ABCD-EFGH`)
    expect(session.expiresIn).toBe(60)
    const result = await session.waitForCompletion()
    expect(result.tokenFilePath).toBe(path.join(dir, "oauth.json"))
    expect(result.expiresAt.getTime()).toBeGreaterThan(Date.now() + 800_000)
    expect(await c.getValidAccessToken()).toBe("at-1")
    const status = await c.status()
    expect(status).toMatchObject({ loggedIn: true, refreshDue: false, tokenFilePath: path.join(dir, "oauth.json") })
    expect(JSON.stringify(status)).not.toContain("at-1")
    expect(await c.logout()).toBe(true)
    expect((await c.status()).loggedIn).toBe(false)
    expect(fs.existsSync(path.join(dir, "device_id"))).toBe(true)
  })

  it("getValidAccessToken right after authorize waits for the login (the README's example)", async () => {
    server = await oauth([pending, tokensReply(2)])
    const c = make()
    await c.authorize()
    expect(await c.getValidAccessToken()).toBe("at-2")
  })

  it("a refused login rejects with a KimiAuthError: stable code, typed cause, actionable message", async () => {
    server = await oauth([{ status: 400, body: { error: "access_denied" } }])
    const session = await make().authorize()
    const error = await session.waitForCompletion().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(KimiAuthError)
    expect(error).toBeInstanceOf(Error)
    const e = error as KimiAuthError
    expect(e.code).toBe("ACCESS_DENIED")
    expect((e.cause as { _tag: string })._tag).toBe("AccessDeniedError")
    expect(e.message).toMatch(/refused/)
  })

  it("aborting the signal stops polling at once and rejects with ABORTED", async () => {
    server = await oauth([pending])
    const controller = new AbortController()
    const session = await make().authorize({ signal: controller.signal })
    const started = Date.now()
    setTimeout(() => controller.abort(), 1500)
    const error = (await session.waitForCompletion().catch((e: unknown) => e)) as KimiAuthError
    expect(error.code).toBe("ABORTED")
    expect(Date.now() - started).toBeLessThan(3000)
    const polls = server.requests.length
    await new Promise((r) => setTimeout(r, 2200))
    expect(server.requests.length).toBe(polls)
    expect(fs.existsSync(path.join(dir, "oauth.json"))).toBe(false)
  })

  it("cancel() stops the login; waitForCompletion({ signal }) can stop waiting without stopping the login", async () => {
    server = await oauth([pending, pending, tokensReply(3)])
    const c = make()
    const session = await c.authorize()
    const stopWaiting = new AbortController()
    stopWaiting.abort()
    const e = (await session.waitForCompletion({ signal: stopWaiting.signal }).catch((x: unknown) => x)) as KimiAuthError
    expect(e.code).toBe("ABORTED")
    // the login itself goes on
    await session.waitForCompletion()
    expect(await c.getValidAccessToken()).toBe("at-3")

    const second = await c.authorize()
    second.cancel()
    expect(((await second.waitForCompletion().catch((x: unknown) => x)) as KimiAuthError).code).toBe("ABORTED")
  })

  it("not logged in: NOT_LOGGED_IN with the login command in the message", async () => {
    server = await oauth([pending])
    const e = (await make().getValidAccessToken().catch((x: unknown) => x)) as KimiAuthError
    expect(e.code).toBe("NOT_LOGGED_IN")
    expect(e.message).toMatch(/kimi-auth login/)
  })

  it("a bad OAuth host is a CONFIG_ERROR, not a crash", async () => {
    server = await oauth([pending])
    const e = (await make({ oauthHost: "http://auth.example.com" }).status().catch((x: unknown) => x)) as KimiAuthError
    expect(e).toBeInstanceOf(KimiAuthError)
    expect(e.code).toBe("CONFIG_ERROR")
  })

  it("after dispose every call rejects with DISPOSED", async () => {
    server = await oauth([pending])
    const c = make()
    await c.dispose()
    await c.dispose()
    expect(((await c.status().catch((x: unknown) => x)) as KimiAuthError).code).toBe("DISPOSED")
  })
})
