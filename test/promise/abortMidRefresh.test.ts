/**
 * The facade when its caller gives up while a refresh is in flight (an
 * aborted signal, or `dispose()`), against a loopback token endpoint that
 * rotates on receipt and answers slowly, with real files: the call waits for
 * the answer and saves it before it settles, so the login survives; the wait
 * is bounded by the request timeout when the server never answers.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type SlowRotatingServer, startSlowRotatingServer } from "../support/slowRotatingServer.js"
import { seedExpiredLogin } from "../support/tokens.js"

let dir: string
let server: SlowRotatingServer | undefined
const clients: Array<KimiOAuthClient> = []

beforeEach(() => {
  dir = makeTemp("kimi-facade-abort-")
})
afterEach(async () => {
  server?.release()
  for (const c of clients.splice(0)) await c.dispose()
  await server?.close()
  server = undefined
  rmTemp(dir)
})

const tokenFile = () => path.join(dir, "oauth.json")
const seedExpired = () => seedExpiredLogin(tokenFile())
const client = (options: { requestTimeout?: `${number} second` } = {}) => {
  const c = new KimiOAuthClient({ oauthHost: server!.url, storageDir: dir, ...options })
  clients.push(c)
  return c
}

describe("KimiOAuthClient: the caller gives up while a refresh is in flight", () => {
  it("an aborted signal settles only after the rotated tokens are saved; the next client is logged in", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: 1200 })
    seedExpired()
    const controller = new AbortController()
    const arrival = server.nextArrival()
    const call = client().getValidAccessToken({ signal: controller.signal }).catch((e: unknown) => e)
    await arrival
    const abortedAt = Date.now()
    controller.abort()
    const e = (await call) as KimiAuthError
    expect(e.code).toBe("ABORTED")
    expect(Date.now() - abortedAt).toBeGreaterThanOrEqual(800)
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
    expect(await client().getValidAccessToken()).toBe("at-1")
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
  }, 30_000)

  it("dispose() mid-refresh waits for the save", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: 1200 })
    seedExpired()
    const c = client()
    const arrival = server.nextArrival()
    const call = c.getValidAccessToken().catch((e: unknown) => e)
    await arrival
    await c.dispose()
    await call
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
    expect(await client().getValidAccessToken()).toBe("at-1")
  }, 30_000)

  it("the wait is bounded by the request timeout when the server never answers", async () => {
    server = await startSlowRotatingServer("rt-0", { answerAfterMs: Infinity })
    seedExpired()
    const controller = new AbortController()
    const arrival = server.nextArrival()
    const call = client({ requestTimeout: "1 second" }).getValidAccessToken({ signal: controller.signal }).catch((e: unknown) => e)
    await arrival
    const abortedAt = Date.now()
    controller.abort()
    const e = (await call) as KimiAuthError
    expect(e.code).toBe("ABORTED")
    expect(Date.now() - abortedAt).toBeLessThan(5_000)
    // Nothing came back to save: the file is unchanged (and whole).
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-0")
  }, 30_000)
})
