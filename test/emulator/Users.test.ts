/**
 * The emulator's users: `/me` answers for the user a token belongs to, a
 * device login is approved as a chosen user (the handle, or the device
 * page's `user` field), an unknown user is refused, and without the `users`
 * option there is one default user, as before.
 */
import { describe, expect, it } from "vitest"
import * as KimiEmulator from "../../src/emulator/KimiEmulator.js"
import { authorize, poll, postForm } from "./http.js"

const USERS = [
  { userId: "u-ada", nickname: "Ada", email: "ada@example.com" },
  { userId: "u-gil", nickname: "Gil", email: "gil@example.ai", region: "global" as const }
]

const me = async (emu: KimiEmulator.StartedEmulator, token: string | undefined) => {
  const r = await fetch(`${emu.apiBaseUrl}/me`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  return { status: r.status, json: (await r.json()) as Record<string, unknown> }
}

describe("emulator users and /me", () => {
  it("one default user without the option; /me needs a valid token", async () => {
    const emu = await KimiEmulator.start()
    try {
      const t = emu.issueTokens()
      expect((await me(emu, t.accessToken)).json).toMatchObject({
        user_id: "emu-user-1", nickname: "Emulator User", email: "user@emulator.local", region: "mainland-cn"
      })
      expect((await me(emu, undefined)).status).toBe(401)
      expect((await me(emu, "nope")).status).toBe(401)
    } finally {
      await emu.close()
    }
  })

  it("a login approved as a chosen user: through the handle, and through the device page", async () => {
    const emu = await KimiEmulator.start({ interval: 1, users: USERS, now: () => 1_800_000_000_000 })
    try {
      expect((await me(emu, emu.issueTokens("u-gil").accessToken)).json).toMatchObject({ user_id: "u-gil", region: "global" })
      expect((await me(emu, emu.issueTokens().accessToken)).json).toMatchObject({ user_id: "u-ada", region: "mainland-cn" })

      const first = await authorize(emu.url)
      expect(emu.approve(first.json.user_code, "u-zed")).toBe(false)
      expect(emu.approve(first.json.user_code, "u-gil")).toBe(true)
      const tokens = await poll(emu.url, first.json.device_code)
      expect((await me(emu, tokens.json.access_token)).json.user_id).toBe("u-gil")

      const second = await authorize(emu.url)
      const page = await fetch(`${emu.url}/device?user_code=${second.json.user_code}`)
      expect(await page.text()).toMatch(/<select name="user"><option value="u-ada">Ada<\/option><option value="u-gil">Gil/)
      const refused = await postForm(`${emu.url}/device`, { user_code: second.json.user_code, action: "approve", user: "u-zed" })
      expect(refused.status).toBe(400)
      const approved = await postForm(`${emu.url}/device`, { user_code: second.json.user_code, action: "approve", user: "u-ada" })
      expect(approved.status).toBe(200)
      const t2 = await poll(emu.url, second.json.device_code)
      expect((await me(emu, t2.json.access_token)).json.user_id).toBe("u-ada")
    } finally {
      await emu.close()
    }
  })
})
