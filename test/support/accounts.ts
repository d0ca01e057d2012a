/** A Kimi account's login on disk, as a login leaves it, minted by the emulator for one of its users. */
import * as path from "node:path"
import { seedLogin } from "./tokens.js"

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
  seedLogin(path.join(dir, file), {
    access: t.accessToken,
    refresh: t.refreshToken,
    expiresAt,
    extra: { version: 1, region, device_id: "0f0e0d0c-0b0a-4909-8807-060504030201" }
  })
  return t.accessToken
}
