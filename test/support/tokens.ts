/** Token sets and refresh answers numbered `n` (`at-n`, `rt-n`), shared by the token and request tests. */
import * as Redacted from "effect/Redacted"
import { TokenSet } from "../../src/TokenSet.js"
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
