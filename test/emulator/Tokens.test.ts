/**
 * Token lifetimes, rotation and RFC 9700 reuse detection, through the
 * promise API (`start`) with a fake clock passed as `now`.
 */
import { afterEach, assert, describe, it } from "vitest"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { authorize, models, poll, refresh } from "./http.js"

const running: Array<KimiEmulator.StartedEmulator> = []
const start = async (options: KimiEmulator.EmulatorOptions = {}) => {
  const emu = await KimiEmulator.start(options)
  running.push(emu)
  return emu
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()))
})

describe("emulator tokens", () => {
  it("rotates refresh tokens: each refresh issues a new pair and spends the old refresh token", async () => {
    const emu = await start()
    const first = emu.issueTokens()
    assert.match(first.accessToken, /^emu_at_/)
    assert.match(first.refreshToken, /^emu_rt_/)
    assert.strictEqual(first.expiresIn, 900)

    const r1 = await refresh(emu.url, first.refreshToken)
    assert.strictEqual(r1.status, 200)
    assert.notStrictEqual(r1.json.access_token, first.accessToken)
    assert.notStrictEqual(r1.json.refresh_token, first.refreshToken)
    assert.strictEqual(r1.json.token_type, "Bearer")
    assert.strictEqual(r1.json.scope, "kimi-code")
    const r2 = await refresh(emu.url, r1.json.refresh_token)
    assert.strictEqual(r2.status, 200)
    assert.strictEqual((await models(emu.apiBaseUrl, r2.json.access_token)).status, 200)
    assert.strictEqual(emu.stats().refreshes, 2)
  })

  it("replaying a spent refresh token answers invalid_grant and revokes the whole family", async () => {
    const emu = await start()
    // a real device login starts the family
    const auth = await authorize(emu.url)
    emu.approve(auth.json.user_code)
    const login = (await poll(emu.url, auth.json.device_code)).json
    const bystander = emu.issueTokens() // another login, another family

    const rotated = (await refresh(emu.url, login.refresh_token)).json
    assert.strictEqual((await models(emu.apiBaseUrl, rotated.access_token)).status, 200)

    const replay = await refresh(emu.url, login.refresh_token)
    assert.strictEqual(replay.status, 400)
    assert.deepStrictEqual(replay.json, {
      error: "invalid_grant",
      error_description: "The provided authorization grant is invalid"
    })
    // every token of the family is dead now, including the newest pair
    const after = await models(emu.apiBaseUrl, rotated.access_token)
    assert.strictEqual(after.status, 401)
    assert.strictEqual(after.json.error.type, "invalid_authentication_error")
    assert.include(after.json.error.message, "revoked")
    assert.strictEqual((await models(emu.apiBaseUrl, login.access_token)).status, 401)
    assert.strictEqual((await refresh(emu.url, rotated.refresh_token)).json.error, "invalid_grant")
    // other logins are untouched
    assert.strictEqual((await models(emu.apiBaseUrl, bystander.accessToken)).status, 200)
    assert.strictEqual((await refresh(emu.url, bystander.refreshToken)).status, 200)

    const s = emu.stats()
    assert.strictEqual(s.spentTokenReplays, 1)
    assert.strictEqual(s.familiesRevoked, 1)
    assert.strictEqual(s.refreshes, 2)
  })

  it("an unknown refresh token or one of another client is invalid_grant, not a replay", async () => {
    const emu = await start({ clientId: ["a", "b"] })
    assert.strictEqual((await refresh(emu.url, "emu_rt_unknown", "a")).json.error, "invalid_grant")
    const t = emu.issueTokens() // minted for the first client id
    assert.strictEqual((await refresh(emu.url, t.refreshToken, "b")).json.error, "invalid_grant")
    assert.strictEqual((await refresh(emu.url, t.refreshToken, "a")).status, 200)
    assert.strictEqual(emu.stats().spentTokenReplays, 0)
  })

  it("access tokens expire after accessTokenTtlSeconds on the emulator clock", async () => {
    let now = Date.UTC(2030, 0, 1)
    const emu = await start({ now: () => now, accessTokenTtlSeconds: 60 })
    const t = emu.issueTokens()
    assert.strictEqual(t.expiresIn, 60)
    now += 59_000
    assert.strictEqual((await models(emu.apiBaseUrl, t.accessToken)).status, 200)
    now += 1_000
    const expired = await models(emu.apiBaseUrl, t.accessToken)
    assert.strictEqual(expired.status, 401)
    assert.include(expired.json.error.message, "expired")
    const fresh = await refresh(emu.url, t.refreshToken)
    assert.strictEqual(fresh.json.expires_in, 60)
    assert.strictEqual((await models(emu.apiBaseUrl, fresh.json.access_token)).status, 200)
    emu.advanceTime(61_000)
    assert.strictEqual((await models(emu.apiBaseUrl, fresh.json.access_token)).status, 401)
  })

  it("expireAccessTokens and revokeAll act on every token issued so far", async () => {
    const emu = await start()
    const a = emu.issueTokens()
    const b = emu.issueTokens()
    emu.expireAccessTokens()
    assert.strictEqual((await models(emu.apiBaseUrl, a.accessToken)).status, 401)
    assert.strictEqual((await models(emu.apiBaseUrl, b.accessToken)).status, 401)
    const a2 = (await refresh(emu.url, a.refreshToken)).json
    assert.strictEqual((await models(emu.apiBaseUrl, a2.access_token)).status, 200, "tokens issued later are fine")

    emu.revokeAll()
    assert.strictEqual((await models(emu.apiBaseUrl, a2.access_token)).status, 401)
    assert.strictEqual((await refresh(emu.url, a2.refresh_token)).json.error, "invalid_grant")
    assert.strictEqual((await refresh(emu.url, b.refreshToken)).json.error, "invalid_grant")
    assert.strictEqual(emu.stats().spentTokenReplays, 0)
  })

  it("the request log keeps the newest maxRecordedRequests entries", async () => {
    const emu = await start({ maxRecordedRequests: 3 })
    for (let i = 0; i < 5; i++) await models(emu.apiBaseUrl, `emu_at_${i}`)
    assert.deepStrictEqual(emu.requests().map((r) => [r.seq, r.bearer]), [[3, "emu_at_2"], [4, "emu_at_3"], [5, "emu_at_4"]])
  })

  it("start() rejects when the port is taken, and close() frees the port", async () => {
    const emu = await start()
    let failed = false
    await KimiEmulator.start({ port: emu.port }).then((e) => e.close(), () => (failed = true))
    assert.isTrue(failed)
    await emu.close()
    const again = await start({ port: emu.port })
    assert.strictEqual(again.url, emu.url)
  })
})
