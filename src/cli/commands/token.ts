/**
 * `kimi-auth token`: a valid access token and nothing else on stdout,
 * refreshed first when due. With `--debug`, stderr says what the stored set
 * was and what changed (`storedTokenLine`, `tokenChangeLine`), never a value.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { Command } from "effect/cli"
import { KimiAuthConfig } from "../../config/KimiAuthConfig.js"
import { TokenManager } from "../../tokens/TokenManager.js"
import type { TokenSet } from "../../tokens/TokenSet.js"
import { TokenStore } from "../../storage/TokenStore.js"
import { accountFlag, debugEnabled, debugFlag } from "../CommonFlags.js"
import { exitCodeHelp } from "../ExitCode.js"
import { isoSeconds, out } from "../Output.js"
import { run } from "../RunCommand.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

/** Whether two sets hold the same refresh token (the rotation did not happen). */
export const sameRefresh = (a: TokenSet, b: TokenSet): boolean =>
  Redacted.value(a.refreshToken) === Redacted.value(b.refreshToken)

/** The `--debug` line about the stored set before the call: when its access token expires, and the refresh window. */
export const storedTokenLine = (before: TokenSet, nowSeconds: number, refreshWindowSeconds: number): string =>
  `token: the stored access token ${
    before.expiresAt > nowSeconds
      ? `expires in ${Math.floor(before.expiresAt - nowSeconds)} s`
      : `expired ${Math.ceil(nowSeconds - before.expiresAt)} s ago`
  } (${isoSeconds(before.expiresAt)}); refresh window ${refreshWindowSeconds} s`

/** The `--debug` line about what the call changed: nothing (no request), or a refresh that did or did not rotate. */
export const tokenChangeLine = (before: TokenSet, after: TokenSet, tokenFilePath: string): string =>
  before.expiresAt === after.expiresAt && sameRefresh(before, after)
    ? "token: the stored access token is still valid; no request was made"
    : `token: refreshed; the new access token is valid until ${isoSeconds(after.expiresAt)}, ` +
      `the refresh token ${sameRefresh(before, after) ? "was not rotated" : "was rotated"} and saved to ${tokenFilePath}`

/** `kimi-auth token`. */
export const tokenCommand = Command.make("token", { account: accountFlag, debug: debugFlag }, (flags) =>
  run(
    "token",
    flags,
    Effect.gen(function*() {
      const settings = yield* KimiAuthConfig
      const manager = yield* TokenManager
      // With --debug only: the stored set before the call, to say afterwards what changed (never a value).
      const before = debugEnabled(flags) ? yield* Effect.flatMap(TokenStore, (s) => s.load) : undefined
      if (before !== undefined) {
        const now = (yield* Clock.currentTimeMillis) / 1000
        yield* Effect.logDebug(storedTokenLine(before, now, Duration.toSeconds(settings.refreshWindow)))
      }
      const tokens = yield* manager.getTokens
      if (before !== undefined) yield* Effect.logDebug(tokenChangeLine(before, tokens, settings.tokenFilePath))
      yield* out(`${Redacted.value(tokens.accessToken)}\n`)
    }),
    { account: Option.getOrUndefined(flags.account) }
  )).pipe(
    Command.withDescription(
      "Print a valid access token and nothing else on stdout, refreshing it first when it is due. " +
        "Safe to run from several processes at once: one refresh, one rotation. " + exitCodeHelp
    ),
    Command.withShortDescription(summaryOf("token")),
    Command.withExamples(examplesOf("token"))
  )
