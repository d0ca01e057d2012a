/** Token sets and refresh answers numbered `n` (`at-n`, `rt-n`), shared by the token and request tests. */
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { TokenSet } from "../../src/tokens/TokenSet.js"
import { json, type Step } from "./scripted.js"

/** Tokens `at-n` / `rt-n` expiring at `expiresAt` (epoch seconds), lifetime `expiresIn`. */
export const tokenSet = (n: number, expiresAt: number, expiresIn = 900) =>
  new TokenSet({
    accessToken: Redacted.make(`at-${n}`),
    refreshToken: Redacted.make(`rt-${n}`),
    tokenType: "Bearer",
    expiresIn,
    scope: "kimi-code",
    expiresAt
  })

/** The token endpoint's 200 answer issuing `at-n` / `rt-n` (900 s), with `extra` fields over it. */
export const refreshed = (n: number, extra: Record<string, unknown> = {}): Step =>
  json(200, { access_token: `at-${n}`, refresh_token: `rt-${n}`, expires_in: 900, token_type: "Bearer", scope: "kimi-code", ...extra })

/**
 * A new private (0700) storage folder below the OS temp folder, named `prefix…`, holding a token file with
 * `at-0` / `rt-0` (900 s lifetime) that expires `secondsLeft` from now (negative: expired), and a device id.
 * The caller removes it.
 */
export const storageWithLogin = (prefix: string, secondsLeft: number): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.chmodSync(dir, 0o700)
  fs.writeFileSync(path.join(dir, "oauth.json"), JSON.stringify({
    version: 1, access_token: "at-0", refresh_token: "rt-0", token_type: "Bearer", expires_in: 900, scope: "kimi-code",
    expires_at: Math.floor(Date.now() / 1000) + secondsLeft, device_id: "11111111-1111-4111-8111-111111111111"
  }), { mode: 0o600 })
  return dir
}
