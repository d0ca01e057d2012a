/**
 * OpenCode 1's `auth.json` copy of the login holds a refresh token the package
 * has spent since (the copy was mirrored at `rt-0`, a refresh rotated it to
 * `rt-1`), and the token file is gone (moved aside). With real files and a
 * loopback token endpoint that rotates and revokes the whole family on a
 * replay: the copy is not adopted, no refresh request carries the spent token,
 * the request fails with a message saying why and how to log in again, and
 * the live login, put back, still works.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "vitest"
import { regionPlugin } from "../../src/opencode/KimiPlugin.js"
import { fingerprint, spentNotePath } from "../../src/storage/SpentRefreshTokens.js"
import { makeTemp, rmTemp } from "../support/cli.js"
import { type RotatingServer, startRotatingServer } from "../support/rotatingServer.js"

let dir: string
let server: RotatingServer
const disposers: Array<() => Promise<void>> = []

beforeEach(async () => {
  dir = makeTemp("kimi-plugin-spent-copy-")
  server = await startRotatingServer("rt-0")
})
afterEach(async () => {
  while (disposers.length) await disposers.pop()!()
  await server.close()
  rmTemp(dir)
})

const tokenFile = () => path.join(dir, "oauth.json")
const spentCopy = () => ({ type: "oauth", refresh: "rt-0", access: "at-0", expires: Date.now() - 10_000 })

/** One plugin run: its loader given `entry` (OpenCode's stored copy), then one request through its fetch. */
const request = async (entry: unknown) => {
  const hooks = await regionPlugin("mainland-cn")({}, { storageDir: dir, oauthHost: server.url, apiBaseUrl: `${server.url}/coding/v1` })
  disposers.push(hooks.dispose)
  const options = await hooks.auth.loader(async () => entry as never)
  const response = await options.fetch(`${server.url}/coding/v1/models`, { headers: { authorization: "Bearer kimi-oauth" } })
  return { status: response.status, text: await response.text() }
}

describe("a spent copy in auth.json with no token file", () => {
  it("is not adopted: no replay reaches the server, the message says why, and the moved-aside login survives", async () => {
    fs.writeFileSync(
      tokenFile(),
      JSON.stringify({ access_token: "at-0", refresh_token: "rt-0", expires_in: 900, expires_at: Math.floor(Date.now() / 1000) - 60 }),
      { mode: 0o600 }
    )
    // The package refreshes: rt-0 is spent, the file holds rt-1 (auth.json, written by no one here, keeps rt-0).
    expect((await request(undefined)).status).toBe(200)
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })

    // The token file goes missing (moved aside by the user or a backup tool).
    fs.renameSync(tokenFile(), `${tokenFile()}.bak`)
    const refused = await request(spentCopy())
    expect(refused.status).toBe(401)
    const message = (JSON.parse(refused.text) as { error: { message: string } }).error.message
    expect(message).toMatch(/stored copy of the Kimi login \(kimi-code-plan-cn, in auth\.json\) was not used/)
    expect(message).toMatch(/already spent/)
    expect(message).toContain("opencode auth login -p kimi-code-plan-cn")
    expect(message).not.toContain("rt-0")
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
    expect(fs.existsSync(tokenFile())).toBe(false)

    // The live login, put back, still works: its family was never revoked.
    fs.renameSync(`${tokenFile()}.bak`, tokenFile())
    expect((await request(undefined)).status).toBe(200)
    expect(server.stats.revoked).toBe(false)

    // What told the copy apart: the spent list beside the token file (a fingerprint, never the token).
    const note = fs.readFileSync(spentNotePath(tokenFile()), "utf8")
    expect(note).toContain(fingerprint("rt-0"))
    expect(note).not.toContain("rt-0")
    if (process.platform !== "win32") expect(fs.statSync(spentNotePath(tokenFile())).mode & 0o777).toBe(0o600)
  }, 30_000)

  it("a copy older than a damaged token file moved aside is not adopted either, even with no spent list", async () => {
    // An older release rotated rt-0 without keeping a list; the file was later found damaged and moved aside.
    const moved = `${tokenFile()}.corrupt-2026-01-01T00-00-00.000Z`
    fs.writeFileSync(moved, "\u0000 not a token file", { mode: 0o600 })
    const refused = await request(spentCopy())
    expect(refused.status).toBe(401)
    expect(refused.text).toContain("older than the damaged token file moved aside")
    expect(server.stats).toEqual({ refreshes: 0, reuses: 0, revoked: false })
    expect(fs.existsSync(tokenFile())).toBe(false)
  }, 30_000)

  it("a copy whose refresh token was never spent is still adopted and refreshed once", async () => {
    expect((await request(spentCopy())).status).toBe(200)
    expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
    expect(JSON.parse(fs.readFileSync(tokenFile(), "utf8")).refresh_token).toBe("rt-1")
  }, 30_000)
})
