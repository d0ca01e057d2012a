/**
 * The facade, like the CLI, ends a login that a network fault outlasted with a
 * message that does not promise a retry: by then the device flow has already
 * retried and given up.
 */
import * as net from "node:net"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { type KimiAuthError, KimiOAuthClient } from "../../src/index.js"
import { makeTemp, rmTemp } from "../support/cli.js"

let dir: string
let client: KimiOAuthClient | undefined

beforeEach(() => {
  dir = makeTemp("kimi-facade-gaveup-")
})
afterEach(async () => {
  await client?.dispose()
  client = undefined
  rmTemp(dir)
})

/** A loopback port with nothing listening (bound, then closed). */
const deadPort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })

describe("KimiOAuthClient: a fault that outlasts the retries", () => {
  it("authorize() against an unreachable host: NETWORK_ERROR naming the host, saying it gave up", async () => {
    const host = `http://127.0.0.1:${await deadPort()}`
    client = new KimiOAuthClient({ oauthHost: host, storageDir: dir })
    const e = (await client.authorize().catch((x: unknown) => x)) as KimiAuthError
    expect(e.code).toBe("NETWORK_ERROR")
    expect(e.message).toContain(host)
    expect(e.message).not.toMatch(/will be retried/i)
    expect(e.message).toMatch(/gave up after several attempts/)
  }, 60_000)
})
