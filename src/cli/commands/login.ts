/**
 * `kimi-auth login`: the OAuth device flow. Shows a link and a code (a QR
 * code on a terminal), opens the browser, counts down, and stores the tokens
 * once approved. What it says at each step is a pure function here.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { Command, Flag } from "effect/cli"
import { renderUnicodeCompact } from "uqr"
import { KimiAuthConfig, type KimiAuthSettings } from "../../config/KimiAuthConfig.js"
import { type AccountLoginResult, loginAccount } from "../../accounts/AccountLogin.js"
import { accountLabel } from "../../light/AccountChoice.js"
import { DEFAULT_REGION } from "../../light/Region.js"
import type { DeviceAuthorization } from "../../oauth/OAuthClient.js"
import type { TokenSet } from "../../tokens/TokenSet.js"
import { TokenStore } from "../../storage/TokenStore.js"
import { type BrowserResult, canOpenBrowser, openBrowser } from "../Browser.js"
import { debugFlag, jsonFlag } from "../CommonFlags.js"
import { ExitCode, exitCodeHelp } from "../ExitCode.js"
import { makeLoginProgress } from "../LoginProgress.js"
import { bold, clock, cyan, dim, err, frame, green, humanDuration, isoSeconds, isTty, out } from "../Output.js"
import { run } from "../RunCommand.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

/** The page to open: the complete URI (code filled in) when Kimi gave one, else the plain one. */
export const verificationUrl = (authorization: DeviceAuthorization): string =>
  authorization.verificationUriComplete ?? authorization.verificationUri

/** The `--json` `code` event: where to go, the code, and whether approving replaces a stored login. */
export const codeEvent = (authorization: DeviceAuthorization, replaces: boolean): string =>
  JSON.stringify({
    event: "code",
    verification_uri: authorization.verificationUri,
    verification_uri_complete: authorization.verificationUriComplete ?? null,
    user_code: authorization.userCode,
    expires_in: authorization.expiresIn,
    interval: authorization.interval,
    replaces_login: replaces
  }) + "\n"

/** The lines of the framed box that shows the link and the code. */
export const codeLines = (
  authorization: DeviceAuthorization,
  style: { readonly bold: (s: string) => string; readonly cyan: (s: string) => string; readonly dim: (s: string) => string }
): ReadonlyArray<string> => [
  style.bold("Log in to Kimi"),
  "",
  `Open:  ${style.cyan(verificationUrl(authorization))}`,
  `Code:  ${style.bold(authorization.userCode)}`,
  "",
  style.dim(`Check that the page shows the same code, then approve. It expires in ${humanDuration(authorization.expiresIn)}.`)
]

/**
 * What to print once the browser opener reported back: a JSON `browser` event
 * with `--json`, else a line; nothing when no opener was tried. A missing or
 * failing opener is never "opened".
 */
export const browserReport = (result: BrowserResult, json: boolean, style: { readonly dim: (s: string) => string }): string | undefined => {
  if (json) {
    return result._tag === "Skipped" ? undefined : JSON.stringify({
      event: "browser",
      opened: result._tag === "Opened",
      ...(result._tag === "Failed" ? { reason: result.reason } : {})
    }) + "\n"
  }
  if (result._tag === "Opened") return style.dim("Opened the page in your browser.\n")
  if (result._tag === "Failed") return style.dim(`Could not open a browser (${result.reason}); open the link above yourself.\n`)
  return undefined
}

/**
 * One tick of the countdown: the whole seconds left, rounded up like any
 * countdown (15:00 at the start, 0:00 only once the code is dead), and the
 * sleep to the next whole second since the start (so drift never skips one).
 */
export const countdownTick = (
  expiresInSeconds: number,
  elapsedMillis: number
): { readonly secondsLeft: number; readonly sleepMillis: number } => ({
  secondsLeft: Math.ceil(expiresInSeconds - elapsedMillis / 1000),
  sleepMillis: 1000 - (elapsedMillis % 1000)
})

/**
 * The `--json` `logged_in` event: where the login was stored, whether it
 * replaced the account's login (same Kimi user) or added an account, and the
 * account (`user_id` is `null` when Kimi did not say who).
 */
export const loggedInEvent = (settings: KimiAuthSettings, result: Omit<AccountLoginResult, "tokens"> & { readonly tokens: TokenSet }): string =>
  JSON.stringify({
    event: "logged_in",
    token_file: result.tokenFilePath,
    expires_at: result.tokens.expiresAt,
    region: result.account?.region ?? settings.region,
    replaced_login: result.replaced,
    oauth_host: settings.oauthHost,
    api_base_url: settings.apiBaseUrl,
    ...(result.account === undefined ? {} : {
      account: { user_id: result.account.userId ?? null, label: accountLabel(result.account), added: !result.replaced }
    })
  }) + "\n"

/** The line under {@link loggedInLine} that says which account, and whether it was added or its login replaced. */
export const accountLine = (result: Pick<AccountLoginResult, "account" | "replaced">): string =>
  result.account === undefined
    ? ""
    : `  account: ${accountLabel(result.account)}; ${
      result.replaced ? "its previous login was replaced" : "a new account"
    }, now the active account for ${result.account.region} (\`kimi-auth accounts\` lists them)\n`

/** The line that says the login is done. */
export const loggedInLine = (tokenFilePath: string, replaced: boolean, style: { readonly green: (s: string) => string }): string =>
  `${style.green("✓")} Logged in to Kimi${replaced ? " (the previous login was replaced)" : ""}. ` +
  `Tokens saved to ${tokenFilePath}\n`

const showCode = (
  authorization: DeviceAuthorization,
  options: { readonly browser: boolean; readonly json: boolean; readonly replaces: boolean }
) =>
  Effect.gen(function*() {
    const url = verificationUrl(authorization)
    if (options.json) {
      yield* out(codeEvent(authorization, options.replaces))
    } else {
      if (isTty()) {
        // Scan with a phone instead of typing; the code below stays the thing to check.
        const qr = Effect.try(() => renderUnicodeCompact(url, { border: 1 })).pipe(Effect.orElseSucceed(() => ""))
        const text = yield* qr
        if (text) yield* out(`\n${text}\n`)
      }
      yield* out("\n" + frame(codeLines(authorization, { bold, cyan, dim })) + "\n")
    }
    if (options.browser) {
      // Said only once the opener reported back: a missing or failing opener is not "opened".
      const report = browserReport(yield* openBrowser(url), options.json, { dim })
      if (report !== undefined) yield* out(report)
    }
  })

/** A live countdown on a TTY; one line per minute otherwise would be noise, so nothing. */
const countdown = (authorization: DeviceAuthorization) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    while (true) {
      const tick = countdownTick(authorization.expiresIn, (yield* Clock.currentTimeMillis) - start)
      yield* out(`\r\x1b[2K${dim(`Waiting for approval… ${clock(tick.secondsLeft)} left (Ctrl-C to cancel)`)}`)
      yield* Effect.sleep(Duration.millis(tick.sleepMillis))
    }
  }).pipe(Effect.ensuring(out("\r\x1b[2K")))

/**
 * The device flow on screen: asks for a code, shows it (and the browser, and
 * a countdown on a terminal), reports retries, and returns the tokens once
 * approved and stored. The countdown and the progress line end with it.
 */
const deviceLogin = (
  settings: KimiAuthSettings,
  flags: { readonly browser: boolean; readonly json: boolean },
  replaces: boolean
) =>
  Effect.gen(function*() {
    const tty = isTty() && !flags.json
    let ticker: Fiber.Fiber<never> | undefined
    const progress = makeLoginProgress()
    yield* progress.asking(settings.oauthHost)
    return yield* loginAccount({
      onStartRetry: progress.startRetry,
      onCode: (authorization) =>
        Effect.gen(function*() {
          yield* progress.clear
          if (replaces && !flags.json) {
            yield* out(
              `You are already logged in; approving this login as the same Kimi user replaces the stored one ` +
                `(${settings.tokenFilePath}); approving as another user adds an account beside it.\n`
            )
          }
          yield* Effect.logDebug(
            `login: device authorization: user code ${authorization.userCode}, expires in ${authorization.expiresIn} s, ` +
              `poll every ${authorization.interval} s, verification URI ${authorization.verificationUri} ` +
              `(the device code is a secret and is not logged)`
          )
          yield* showCode(authorization, { browser: flags.browser && canOpenBrowser(), json: flags.json, replaces })
          if (tty) ticker = yield* Effect.forkChild(countdown(authorization))
          else if (!flags.json) yield* out("Waiting for approval…\n")
        }),
      onEvent: (event) =>
        event._tag === "Retrying"
          ? Effect.andThen(
            Effect.logDebug(`login: ${event.error.message} Retrying in ${Math.round(event.delayMillis / 1000)} s.`),
            progress.pollRetry(event.error.message, event.delayMillis)
          )
          : Effect.logDebug(`login: poll ${event.attempt}: ${event._tag}`)
    }).pipe(
      Effect.ensuring(Effect.suspend(() => (ticker ? Fiber.interrupt(ticker) : Effect.void))),
      Effect.ensuring(progress.clear)
    )
  })

/** `kimi-auth login`. */
export const loginCommand = Command.make(
  "login",
  {
    browser: Flag.Boolean("browser").pipe(
      Flag.withDefault(true),
      Flag.withDescription("Open the approval page in a browser (--no-browser to only print it)")
    ),
    region: Flag.optional(Flag.ChoiceWithValue("region", [["mainland-cn", "mainland-cn"], ["global", "global"]] as const))
      .pipe(
        Flag.withDescription(
          "Kimi region to log in to: mainland-cn (auth.kimi.com, the default) or global (auth.kimi.ai). " +
            "KIMI_CODE_OAUTH_HOST / KIMI_OAUTH_HOST and KIMI_CODE_BASE_URL still win"
        )
      ),
    json: jsonFlag,
    debug: debugFlag
  },
  (flags) =>
    run(
      "login",
      flags,
      Effect.gen(function*() {
        const settings = yield* KimiAuthConfig
        // A login over a login replaces it once approved: say so before the user acts.
        const previous = yield* Effect.flatMap(TokenStore, (s) => s.load).pipe(Effect.orElseSucceed(() => undefined))
        const result = yield* deviceLogin(settings, flags, previous !== undefined)
        yield* Effect.logDebug(
          `login: approved; access token valid until ${isoSeconds(result.tokens.expiresAt)}, scope "${result.tokens.scope}"; ` +
            `tokens saved to ${result.tokenFilePath}`
        )
        yield* out(
          flags.json
            ? loggedInEvent(settings, result)
            : loggedInLine(result.tokenFilePath, result.replaced, { green }) + accountLine(result)
        )
      }).pipe(
        // Ctrl-C: one line that says so (the exit code stays 130); nothing was stored.
        Effect.onInterrupt(() =>
          flags.json
            ? out(JSON.stringify({ event: "cancelled", exit_code: ExitCode.interrupted }) + "\n")
            : err("Login cancelled; nothing was stored.\n")
        )
      ),
      // A login is at the region asked, else the default one: never the current account's by accident.
      { region: Option.getOrElse(flags.region, () => DEFAULT_REGION) }
    )
).pipe(
  Command.withDescription(
    "Log in to Kimi with the OAuth device flow: shows a link and a code, waits for approval in the browser, " +
      "and stores the tokens (0600) in the storage folder. Logging in again as the same Kimi user replaces that account's " +
      "login once the new one is approved; another user adds an account, which becomes the active one for its region. " +
      exitCodeHelp
  ),
  Command.withShortDescription(summaryOf("login")),
  Command.withExamples(examplesOf("login"))
)
