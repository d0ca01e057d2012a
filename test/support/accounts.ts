/** A Kimi account's login on disk, as a login leaves it, minted by the emulator for one of its users. */
import * as fs from "node:fs"
import * as path from "node:path"

/** Writes `file` in `dir` with a fresh token pair of `userId` (valid 800 s unless `expiresAt`); returns the access token. */
export const seedAccountLogin = (
  emulator: { readonly issueTokens: (userId?: string) => { readonly accessToken: string; readonly refreshToken: string } },
  dir: string,
  file: string,
  userId: string,
  region: "mainland-cn" | "global",
  expiresAt = Math.floor(Date.now() / 1000) + 800
): string => {
  const t = emulator.issueTokens(userId)
  fs.writeFileSync(path.join(dir, file), JSON.stringify({
    version: 1, access_token: t.accessToken, refresh_token: t.refreshToken, token_type: "Bearer", expires_in: 900,
    scope: "kimi-code", expires_at: expiresAt, region, device_id: "0f0e0d0c-0b0a-4909-8807-060504030201"
  }), { mode: 0o600 })
  return t.accessToken
}
