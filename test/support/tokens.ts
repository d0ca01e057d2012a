/**
 * Token sets and refresh answers numbered `n` (`at-n`, `rt-n`), shared by the token and request tests, and
 * logins on disk in the seed format: the token file as Kimi's own clients write it (`seedLogin`, `seedExpiredLogin`).
 */
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

/** A login to write in the seed format: tokens (default `at-0` / `rt-0`), expiry (epoch seconds), extra fields. */
export interface SeedLogin {
  readonly access?: string
  readonly refresh?: string
  readonly expiresAt: number
  /** More fields (say `device_id`, `region`) after `expires_at`; `version` goes first; a seed field named here is replaced in place. */
  readonly extra?: Record<string, unknown>
}

/** Now, in epoch seconds. */
const nowSeconds = () => Math.floor(Date.now() / 1000)

/**
 * The token file's text in the seed format, the fields Kimi's own clients write: `access_token`, `refresh_token`,
 * `token_type` Bearer, `expires_in` 900, `scope` kimi-code, `expires_at`, then `extra` (compact JSON, no newline).
 */
export const seedText = ({ access = "at-0", refresh = "rt-0", expiresAt, extra = {} }: SeedLogin): string => {
  const { version, ...rest } = extra
  return JSON.stringify({
    ...(version === undefined ? {} : { version }),
    access_token: access,
    refresh_token: refresh,
    token_type: "Bearer",
    expires_in: 900,
    scope: "kimi-code",
    expires_at: expiresAt,
    ...rest
  })
}

/** Writes `login` to `file` in the seed format (0600), creating its folder (0700) if missing. */
export const seedLogin = (file: string, login: SeedLogin): void => {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  fs.writeFileSync(file, seedText(login), { mode: 0o600 })
}

/** Writes an expired login to `file` with `seedLogin`: `at-0` / `rt-0`, expired 60 s ago, unless `over` says otherwise. */
export const seedExpiredLogin = (file: string, over: Partial<SeedLogin> = {}): void =>
  seedLogin(file, { expiresAt: nowSeconds() - 60, ...over })

/**
 * A new private (0700) storage folder below the OS temp folder, named `prefix…`, holding a token file with
 * `at-0` / `rt-0` (900 s lifetime) that expires `secondsLeft` from now (negative: expired), and a device id.
 * The caller removes it.
 */
export const storageWithLogin = (prefix: string, secondsLeft: number): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.chmodSync(dir, 0o700)
  seedLogin(path.join(dir, "oauth.json"), {
    expiresAt: nowSeconds() + secondsLeft,
    extra: { version: 1, device_id: "11111111-1111-4111-8111-111111111111" }
  })
  return dir
}
