/**
 * The `kimi-auth` commands: login, status, token, logout, emulator. Each is a
 * thin edge over the core services: it builds the layer, runs one effect,
 * prints the outcome, and turns a typed error into its message and exit code.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Redacted from "effect/Redacted"
import * as References from "effect/References"
import { Command, Flag } from "effect/cli"
import { renderUnicodeCompact } from "uqr"
import { KimiAuthConfig } from "../KimiAuthConfig.js"
import { layerNode, type KimiAuthLayerOptions, type KimiAuthServices } from "../KimiAuth.js"
import { login } from "../Login.js"
import { loginStatus } from "../LoginStatus.js"
import type { DeviceAuthorization } from "../OAuthClient.js"
import { TokenManager } from "../TokenManager.js"
import type { TokenSet } from "../TokenSet.js"
import { TokenStore } from "../TokenStore.js"
import type { EmulatorOptions } from "../emulator/KimiEmulator.js"
import * as Option from "effect/Option"
import { KimiApi } from "../KimiApi.js"
import { withRegionLoginHint } from "../Errors.js"
import type { KimiRegion } from "../Region.js"
import { canOpenBrowser, openBrowser } from "./Browser.js"
import { ExitCode, exitCodeFor, exitCodeHelp } from "./ExitCode.js"
import { bold, clock, cyan, dim, err, frame, green, humanDuration, isTty, out, red } from "./Output.js"
import { makeLoginProgress } from "./LoginProgress.js"
import { usageJson, usageLines } from "./UsageView.js"
import { openCodeAuthPath, type OpenCodeLogout, removeKimiEntries } from "./OpenCodeAuth.js"
import { logoutMarkerPath, recordLoggedOut } from "../LogoutMarker.js"
import * as fs from "node:fs"

const debugFlag = Flag.Boolean("debug").pipe(
  Flag.withDefault(false),
  Flag.withDescription("Print debug logs on stderr (secrets are always redacted). Also DEBUG=opencode-kimi-auth:*")
)

const jsonFlag = Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("Print JSON instead of text"))

/** `DEBUG` names this package (`opencode-kimi-auth`, `opencode-kimi-auth:*`) or `*`; comma or space separated, as the `debug` package reads it. */
const debugFromEnv = () => /(^|[\s,])(\*|opencode-kimi-auth(:\*)?)([\s,]|$)/.test(process.env["DEBUG"] ?? "")

const debugEnabled = (flags: { readonly debug: boolean }) => flags.debug || debugFromEnv()

/** Logs go to stderr so stdout stays clean for `token` and `--json`; Debug level with `--debug`. */
const loggingLayer = (debug: boolean) =>
  Layer.mergeAll(
    Layer.succeed(Logger.LogToStderr, true),
    Layer.succeed(References.MinimumLogLevel, debugEnabled({ debug }) ? "Debug" : "Warn")
  )

/** An epoch-seconds instant as ISO 8601; a value no date can hold (say `1e308` from a hostile file) says so instead of throwing. */
const isoSeconds = (seconds: number) => {
  const date = new Date(seconds * 1000)
  return Number.isNaN(date.getTime()) ? `an invalid time (${String(seconds).slice(0, 24)})` : date.toISOString()
}

/**
 * The last resort for a defect (a bug, or a value nothing expected): one line
 * naming its kind, exit 1, never a stack on stdout or stderr (a message may
 * hold what it choked on, say a header value with a token in it). With
 * `--debug`, the stack frames, without the message line.
 */
const reportDefect = (name: string, flags: { readonly debug: boolean; readonly json?: boolean }, cause: Cause.Cause<unknown>) =>
  Effect.gen(function*() {
    const defect = Cause.squash(cause)
    const kind = defect instanceof Error ? defect.name.replace(/[^A-Za-z0-9_]/g, "").slice(0, 40) || "Error" : typeof defect
    const message = `kimi-auth ${name} stopped on an unexpected internal error (${kind}). This is a bug: ` +
      `please report it with the command you ran. Your stored login was not changed by this message.`
    if (defect instanceof Error && typeof defect.stack === "string" && debugEnabled(flags)) {
      const frames = defect.stack.split("\n").filter((l) => /^\s+at /.test(l)).slice(0, 12).join("\n")
      yield* err(`${frames}\n`)
    }
    if (flags.json) {
      yield* out(JSON.stringify({ event: "error", error: "Defect", exit_code: ExitCode.unexpected, message }) + "\n")
    } else {
      yield* err(`${red("error:")} ${message}\n`)
    }
    process.exitCode = ExitCode.unexpected
  })

/**
 * Runs a command body with every service, and maps the outcome to an exit
 * code: success sets 0, a typed error prints its message (or JSON) and sets
 * its code. Nothing escapes as a stack trace.
 */
const run = <E extends { readonly _tag: string; readonly message: string }>(
  name: string,
  flags: { readonly debug: boolean; readonly json?: boolean },
  body: Effect.Effect<ExitCode | void, E, KimiAuthServices>,
  options: KimiAuthLayerOptions = {}
) => {
  /** The configured region, once known: the login hint of an error names its commands. */
  let region: KimiRegion | undefined
  return Effect.gen(function*() {
    const s = yield* KimiAuthConfig
    region = s.region
    yield* Effect.logDebug(
      `${name}: OAuth host ${s.oauthHost}, API base ${s.apiBaseUrl}, client id ${s.clientId}, token file ${s.tokenFilePath}`
    )
    return yield* body.pipe(
      // The stored login's region, when there is one, names the commands that log in there again.
      Effect.tapError(() =>
        Effect.flatMap(TokenStore, (store) => store.load).pipe(
          Effect.tap((stored) => Effect.sync(() => void (region = stored?.region ?? region))),
          Effect.ignore
        )
      )
    )
  }).pipe(
    Effect.provide(layerNode(options)),
    Effect.matchEffect({
      onSuccess: (code) => Effect.sync(() => void (process.exitCode = code ?? ExitCode.ok)),
      onFailure: (error) =>
        Effect.gen(function*() {
          const code = exitCodeFor(error._tag)
          const message = region === undefined ? error.message : withRegionLoginHint(error.message, region)
          yield* Effect.logDebug(`${name}: failed with ${error._tag}; exit code ${code}`)
          if (flags.json) {
            yield* out(JSON.stringify({ event: "error", error: error._tag, exit_code: code, message }) + "\n")
          } else {
            yield* err(`${red("error:")} ${message}\n`)
          }
          process.exitCode = code
        })
    }),
    Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : reportDefect(name, flags, cause)),
    Effect.onInterrupt(() => Effect.sync(() => void (process.exitCode = ExitCode.interrupted))),
    Effect.provide(loggingLayer(flags.debug))
  )
}

// ---------------------------------------------------------------------------
// login

const showCode = (
  authorization: DeviceAuthorization,
  options: { readonly browser: boolean; readonly json: boolean; readonly replaces: boolean }
) =>
  Effect.gen(function*() {
    const url = authorization.verificationUriComplete ?? authorization.verificationUri
    if (options.json) {
      yield* out(JSON.stringify({
        event: "code",
        verification_uri: authorization.verificationUri,
        verification_uri_complete: authorization.verificationUriComplete ?? null,
        user_code: authorization.userCode,
        expires_in: authorization.expiresIn,
        interval: authorization.interval,
        replaces_login: options.replaces
      }) + "\n")
    } else {
      if (isTty()) {
        // Scan with a phone instead of typing; the code below stays the thing to check.
        const qr = Effect.try(() => renderUnicodeCompact(url, { border: 1 })).pipe(Effect.orElseSucceed(() => ""))
        const text = yield* qr
        if (text) yield* out(`\n${text}\n`)
      }
      yield* out(
        "\n" + frame([
          bold("Log in to Kimi"),
          "",
          `Open:  ${cyan(url)}`,
          `Code:  ${bold(authorization.userCode)}`,
          "",
          dim(`Check that the page shows the same code, then approve. It expires in ${humanDuration(authorization.expiresIn)}.`)
        ]) + "\n"
      )
    }
    if (options.browser) {
      // Said only once the opener reported back: a missing or failing opener is not "opened".
      const result = yield* openBrowser(url)
      if (options.json) {
        if (result._tag !== "Skipped") {
          yield* out(JSON.stringify({
            event: "browser",
            opened: result._tag === "Opened",
            ...(result._tag === "Failed" ? { reason: result.reason } : {})
          }) + "\n")
        }
      } else if (result._tag === "Opened") {
        yield* out(dim("Opened the page in your browser.\n"))
      } else if (result._tag === "Failed") {
        yield* out(dim(`Could not open a browser (${result.reason}); open the link above yourself.\n`))
      }
    }
  })

/** A live countdown on a TTY; one line per minute otherwise would be noise, so nothing. */
const countdown = (authorization: DeviceAuthorization) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    while (true) {
      const elapsed = (yield* Clock.currentTimeMillis) - start
      // Rounded up, like any countdown: 15:00 at the start, 0:00 only once the code is dead.
      const left = Math.ceil(authorization.expiresIn - elapsed / 1000)
      yield* out(`\r\x1b[2K${dim(`Waiting for approval… ${clock(left)} left (Ctrl-C to cancel)`)}`)
      // Wake on the next whole second since the start, so the drift of the sleeps never skips a second.
      yield* Effect.sleep(Duration.millis(1000 - (elapsed % 1000)))
    }
  }).pipe(Effect.ensuring(out("\r\x1b[2K")))

const loginCommand = Command.make(
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
        const tty = isTty() && !flags.json
        let ticker: Fiber.Fiber<never> | undefined
        const progress = makeLoginProgress()
        // A login over a login replaces it once approved: say so before the user acts.
        const previous = yield* Effect.flatMap(TokenStore, (s) => s.load).pipe(Effect.orElseSucceed(() => undefined))
        yield* progress.asking(settings.oauthHost)
        const tokens = yield* login({
          onStartRetry: progress.startRetry,
          onCode: (authorization) =>
            Effect.gen(function*() {
              yield* progress.clear
              if (previous !== undefined && !flags.json) {
                yield* out(`You are already logged in; approving this login replaces the stored one (${settings.tokenFilePath}).\n`)
              }
              yield* Effect.logDebug(
                `login: device authorization: user code ${authorization.userCode}, expires in ${authorization.expiresIn} s, ` +
                  `poll every ${authorization.interval} s, verification URI ${authorization.verificationUri} ` +
                  `(the device code is a secret and is not logged)`
              )
              yield* showCode(authorization, {
                browser: flags.browser && canOpenBrowser(),
                json: flags.json,
                replaces: previous !== undefined
              })
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
        yield* Effect.logDebug(
          `login: approved; access token valid until ${isoSeconds(tokens.expiresAt)}, scope "${tokens.scope}"; ` +
            `tokens saved to ${settings.tokenFilePath}`
        )
        if (flags.json) {
          yield* out(JSON.stringify({
            event: "logged_in",
            token_file: settings.tokenFilePath,
            expires_at: tokens.expiresAt,
            region: settings.region,
            replaced_login: previous !== undefined,
            oauth_host: settings.oauthHost,
            api_base_url: settings.apiBaseUrl
          }) + "\n")
        } else {
          yield* out(
            `${green("✓")} Logged in to Kimi${previous !== undefined ? " (the previous login was replaced)" : ""}. ` +
              `Tokens saved to ${settings.tokenFilePath}\n`
          )
        }
      }).pipe(
        // Ctrl-C: one line that says so (the exit code stays 130); nothing was stored.
        Effect.onInterrupt(() =>
          flags.json
            ? out(JSON.stringify({ event: "cancelled", exit_code: ExitCode.interrupted }) + "\n")
            : err("Login cancelled; nothing was stored.\n")
        )
      ),
      { region: Option.getOrUndefined(flags.region) }
    )
).pipe(
  Command.withDescription(
    "Log in to Kimi with the OAuth device flow: shows a link and a code, waits for approval in the browser, " +
      "and stores the tokens (0600) in the storage folder. Logging in again replaces the stored login once the new one is approved. " +
      exitCodeHelp
  ),
  Command.withShortDescription("Log in with the OAuth device flow (a link and a code to approve in the browser)"),
  Command.withExamples([
    { command: "kimi-auth login", description: "Log in, opening the approval page in a browser" },
    { command: "kimi-auth login --no-browser", description: "Only print the link and the code (SSH, containers)" },
    { command: "kimi-auth login --region global", description: "Log in to Kimi's global region (kimi.ai)" },
    { command: "kimi-auth login --json", description: "Machine-readable events, one JSON object per line" }
  ])
)

// ---------------------------------------------------------------------------
// status

const statusCommand = Command.make("status", { json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "status",
    flags,
    Effect.gen(function*() {
      const status = yield* loginStatus
      const tokens = status.tokens
      yield* Effect.logDebug(
        tokens === undefined
          ? `status: no tokens at ${status.tokenFilePath}`
          : `status: read ${status.tokenFilePath}: access token valid until ${isoSeconds(tokens.expiresAt)}, ` +
            `refresh ${tokens.refreshDue ? "due" : "not due"} (window ${status.refreshWindowSeconds} s); ` +
            `device id from ${status.deviceIdPath}`
      )
      const base = {
        token_file: status.tokenFilePath,
        device_id: status.deviceId,
        oauth_host: status.oauthHost,
        api_base_url: status.apiBaseUrl,
        region: status.region
      }
      const loginCommandText = status.region === "global" ? "kimi-auth login --region global" : "kimi-auth login"
      const deviceId = status.deviceId === "" ? "(none yet: the first login or request creates it)" : status.deviceId
      if (tokens === undefined) {
        if (flags.json) yield* out(JSON.stringify({ logged_in: false, ...base }) + "\n")
        else {
          yield* out(`Not logged in to Kimi. Run ${bold(loginCommandText)}.\n`)
          yield* out(dim(`  token file: ${status.tokenFilePath}\n  device id:  ${deviceId}\n`))
        }
        return ExitCode.notLoggedIn
      }
      const remaining = tokens.remainingSeconds
      const refused = status.refreshRefused
      if (refused !== undefined) {
        // Kimi refused the stored refresh token: whatever the access token's clock says, the login is dead.
        if (flags.json) {
          yield* out(JSON.stringify({
            logged_in: false,
            refresh_refused: true,
            refresh_refused_at: refused.at,
            refresh_refused_detail: refused.detail,
            expires_at: tokens.expiresAt,
            ...base
          }) + "\n")
        } else {
          yield* out(`${red("✗")} Not logged in to Kimi: Kimi refused the last token refresh (${refused.at}).\n`)
          yield* out(
            `  ${refused.detail}. The stored tokens were kept, but they no longer work; run ${bold(loginCommandText)}.\n`
          )
          yield* out(dim(`  token file:   ${status.tokenFilePath}\n  device id:    ${deviceId}\n`))
        }
        return ExitCode.notLoggedIn
      }
      if (flags.json) {
        yield* out(JSON.stringify({
          logged_in: true,
          expires_at: tokens.expiresAt,
          expires_in_seconds: Math.floor(remaining),
          access_token_expired: remaining <= 0,
          refresh_due: tokens.refreshDue,
          scope: tokens.scope,
          ...base
        }) + "\n")
      } else {
        yield* out(`${green("✓")} Logged in to Kimi.\n`)
        yield* out(
          `  access token: ${
            remaining > 0 ? `valid for ${humanDuration(remaining)}` : `expired ${humanDuration(-remaining)} ago`
          } (${isoSeconds(tokens.expiresAt)}); ${
            tokens.refreshDue
              ? "due for refresh: the next use refreshes it"
              : `refresh due in ${humanDuration(tokens.refreshInSeconds)}`
          }, with the stored refresh token\n`
        )
        yield* out(`  token file:   ${status.tokenFilePath}\n  device id:    ${deviceId}\n`)
        yield* out(`  region:       ${status.region}\n`)
        yield* out(`  OAuth host:   ${status.oauthHost}\n  API base:     ${status.apiBaseUrl}\n`)
      }
    })
  )).pipe(
    Command.withDescription("Show whether you are logged in, when the access token expires, the device id and the token file. Never prints a secret and makes no request. Exit code 7 when not logged in (or when Kimi refused the last refresh)."),
    Command.withShortDescription("Show whether you are logged in and until when; never a secret"),
    Command.withExamples([
      { command: "kimi-auth status", description: "Human-readable status" },
      { command: "kimi-auth status --json", description: "For scripts" }
    ])
  )

// ---------------------------------------------------------------------------
// token

const sameRefresh = (a: TokenSet, b: TokenSet) => Redacted.value(a.refreshToken) === Redacted.value(b.refreshToken)

const tokenCommand = Command.make("token", { debug: debugFlag }, (flags) =>
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
        yield* Effect.logDebug(
          `token: the stored access token ${
            before.expiresAt > now
              ? `expires in ${Math.floor(before.expiresAt - now)} s`
              : `expired ${Math.ceil(now - before.expiresAt)} s ago`
          } (${isoSeconds(before.expiresAt)}); refresh window ${Duration.toSeconds(settings.refreshWindow)} s`
        )
      }
      const tokens = yield* manager.getTokens
      if (before !== undefined) {
        yield* Effect.logDebug(
          before.expiresAt === tokens.expiresAt && sameRefresh(before, tokens)
            ? "token: the stored access token is still valid; no request was made"
            : `token: refreshed; the new access token is valid until ${isoSeconds(tokens.expiresAt)}, ` +
              `the refresh token ${
                sameRefresh(before, tokens) ? "was not rotated" : "was rotated"
              } and saved to ${settings.tokenFilePath}`
        )
      }
      yield* out(`${Redacted.value(tokens.accessToken)}\n`)
    })
  )).pipe(
    Command.withDescription(
      "Print a valid access token and nothing else on stdout, refreshing it first when it is due. " +
        "Safe to run from several processes at once: one refresh, one rotation. " + exitCodeHelp
    ),
    Command.withShortDescription("Print a valid access token (refreshed first when due) and nothing else"),
    Command.withExamples([
      {
        command: 'curl -H "Authorization: Bearer $(kimi-auth token)" https://api.kimi.com/coding/v1/models',
        description: "Call the API with a fresh token"
      }
    ])
  )

// ---------------------------------------------------------------------------
// usage

const usageCommand = Command.make("usage", { json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "usage",
    flags,
    Effect.gen(function*() {
      const usage = yield* Effect.flatMap(KimiApi, (api) => api.usage).pipe(Effect.provide(KimiApi.layerFromAuth))
      const now = yield* Clock.currentTimeMillis
      yield* Effect.logDebug(`usage: ${usage.windows.length} window(s) read from /usages`)
      if (flags.json) yield* out(JSON.stringify(usageJson(usage, now)) + "\n")
      else yield* out(usageLines(usage, now, { warn: red, dim, bold }).join("\n") + "\n")
    })
  )).pipe(
    Command.withDescription(
      "Show the plan's quota from Kimi's /usages: each window (weekly, 5-hour) with used/limit, a bar, and when it " +
        "resets (local time with its time zone, and a countdown). Uses the stored login. " + exitCodeHelp
    ),
    Command.withShortDescription("Show the plan's quota: each window's use and when it resets"),
    Command.withExamples([
      { command: "kimi-auth usage", description: "How much of the quota is used, and when it resets" },
      { command: "kimi-auth usage --json", description: "For scripts and status bars" }
    ])
  )

// ---------------------------------------------------------------------------
// logout

/** What logout says about OpenCode's copy, one line. */
const openCodeLine = (r: OpenCodeLogout, recorded: boolean): string => {
  switch (r._tag) {
    case "NoFile":
      return `OpenCode holds no Kimi login (no ${r.file}).`
    case "Done": {
      const keys = r.apiKeys.length > 0
        ? ` OpenCode still holds a Kimi API key for ${r.apiKeys.join(", ")} there (not a device login; ` +
          `\`opencode auth logout\` removes it).`
        : ""
      return (r.removed.length > 0
        ? `Removed OpenCode's copy of the login (${r.removed.join(", ")}) from ${r.file}; its other entries are unchanged.`
        : `OpenCode holds no Kimi device login in ${r.file}.`) + keys
    }
    case "Untouched":
      return `OpenCode's ${r.file} was left unchanged: ${r.reason}. ` +
        (recorded ? "Its copy of this login is never used again by this plugin; " : "") +
        "to remove Kimi's entries from it, run `opencode auth logout`."
  }
}

const logoutCommand = Command.make("logout", { debug: debugFlag }, (flags) =>
  run(
    "logout",
    flags,
    Effect.gen(function*() {
      const settings = yield* KimiAuthConfig
      const manager = yield* TokenManager
      const store = yield* TokenStore
      // Records the login's fingerprints (logged-out.json), then removes the file, under the lock.
      const removed = yield* manager.clear
      // OpenCode's copy: its Kimi OAuth entries go too, and are fingerprinted, so no copy is ever adopted back.
      const { opencode, recorded } = yield* store.withLock(Effect.sync(() => {
        const r = removeKimiEntries(openCodeAuthPath(process.env))
        const secrets = r._tag === "NoFile" ? [] : r.secrets
        try {
          if (secrets.length > 0) fs.mkdirSync(settings.storageDir, { recursive: true, mode: 0o700 })
          recordLoggedOut(settings.storageDir, secrets)
          return { opencode: r, recorded: secrets.length > 0 }
        } catch {
          return { opencode: r, recorded: false }
        }
      }))
      yield* Effect.logDebug(
        `logout: ${removed ? "removed" : "found no"} ${settings.tokenFilePath}; kept the device id in ${settings.deviceIdPath}; ` +
          `OpenCode: ${opencode._tag}; fingerprints in ${logoutMarkerPath(settings.storageDir)}`
      )
      const copyRemoved = opencode._tag === "Done" && opencode.removed.length > 0
      yield* out(
        (removed
          ? `Logged out: removed ${settings.tokenFilePath}. The device id is kept.\n`
          : `Not logged in here; nothing to remove at ${settings.tokenFilePath}.\n`) +
          `${openCodeLine(opencode, recorded)}\n` +
          (removed || copyRemoved ? "Nothing uses this login again; `kimi-auth login` makes a new one.\n" : "")
      )
    })
  )).pipe(
    Command.withDescription(
      "Log out: remove the stored tokens (the device id is kept) and OpenCode's copy of the Kimi device login " +
        "(the kimi-code-plan-cn / kimi-code-plan-global OAuth entries of its auth.json; other entries are untouched). " +
        "The login's fingerprints are kept in logged-out.json so that no leftover copy is ever used again."
    ),
    Command.withExamples([{ command: "kimi-auth logout", description: "Forget the login on this machine" }])
  )

// ---------------------------------------------------------------------------
// emulator

/** A number read from a flag's text; anything else is `Option.none()`. */
const finite = (text: string): Option.Option<number> => {
  const n = text.trim() === "" ? Number.NaN : Number(text)
  return Number.isFinite(n) ? Option.some(n) : Option.none()
}

/** An optional number flag whose error says what it takes (`expected`, e.g. "a share from 0 to 1, such as 0.3"). */
const optionalNumber = (name: string, description: string, expected: string) =>
  Flag.optional(
    Flag.String(name).pipe(
      Flag.withMetavar("number"),
      Flag.filterMap(finite, () => `Expected ${expected}.`)
    )
  ).pipe(Flag.withDescription(description))

/** `--port`: a whole number from 0 to 65535. */
const portFlag = Flag.String("port").pipe(
  Flag.withMetavar("port"),
  Flag.filterMap(
    (text) => (/^\d{1,5}$/.test(text.trim()) && Number(text) <= 65535 ? Option.some(Number(text)) : Option.none()),
    () => "Expected a port number from 0 to 65535, such as 8787 (0 picks a free port)."
  ),
  Flag.withDefault(0),
  Flag.withDescription("Port to listen on; 0 picks a free one")
)

const MS = "a number of milliseconds, such as 2000"
const SECONDS = "a number of seconds, such as 5"
const SHARE = "a share from 0 to 1, such as 0.3"
const COUNT = "a whole number, such as 100"

const emulatorCommand = Command.make(
  "emulator",
  {
    port: portFlag,
    host: Flag.String("host").pipe(Flag.withDefault("127.0.0.1"), Flag.withDescription("Interface (loopback by default)")),
    autoApprove: optionalNumber("auto-approve", "Approve every login this many ms after it starts", MS),
    interval: optionalNumber("interval", "Polling interval in seconds (default 5)", SECONDS),
    accessTokenTtl: optionalNumber("access-token-ttl", "Access-token lifetime in seconds (default 900)", SECONDS),
    deviceCodeTtl: optionalNumber("device-code-ttl", "Device-code lifetime in seconds (default 900)", SECONDS),
    errorRate: optionalNumber("error-rate", "Share (0..1) of requests answered 5xx with an HTML page", SHARE),
    dropRate: optionalNumber("drop-rate", "Share (0..1) of connections dropped without an answer", SHARE),
    rateLimitRate: optionalNumber("rate-limit-rate", "Share (0..1) of requests answered 429 with Retry-After", SHARE),
    retryAfter: optionalNumber("retry-after", "Retry-After of the 429 answers, in seconds (default 1)", SECONDS),
    latency: optionalNumber("latency", "Milliseconds added to every request", MS),
    faultPaths: Flag.optional(Flag.String("fault-paths")).pipe(
      Flag.withDescription("Comma-separated paths the faults apply to (default /api/oauth,/coding/v1)")
    ),
    seed: optionalNumber("seed", "Seed that makes the injected faults deterministic", "a number, such as 1"),
    clientId: Flag.optional(Flag.String("client-id")).pipe(
      Flag.withDescription("The accepted OAuth client id (default: Kimi's public client id)")
    ),
    quota5h: optionalNumber("quota-5h", "Chat completions allowed per rolling 5-hour window (default 100)", COUNT),
    quotaWeek: optionalNumber("quota-week", "Chat completions allowed per weekly window (default 1000)", COUNT),
    quotaRefusal: Flag.ChoiceWithValue("quota-refusal", [["403", 403 as const], ["429", 429 as const]]).pipe(
      Flag.withDefault(403 as const),
      Flag.withDescription(
        "How a used-up quota is refused: 403 \"You've reached your usage limit…\" or 429 exceeded_current_quota_error"
      )
    ),
    rateLimited: Flag.Boolean("rate-limited").pipe(
      Flag.withDefault(false),
      Flag.withDescription("Answer every chat completion 429 rate_limit_reached_error (a rate limit, not the quota)")
    ),
    debug: Flag.Boolean("debug").pipe(
      Flag.withDefault(false),
      Flag.withDescription("Print one debug line per request on stderr (method, path, status; never a secret). Also DEBUG=opencode-kimi-auth:*")
    )
  },
  (flags) => {
    const value = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)
    const faults = {
      serverErrorRate: value(flags.errorRate),
      dropRate: value(flags.dropRate),
      tooManyRequestsRate: value(flags.rateLimitRate),
      retryAfterSeconds: value(flags.retryAfter),
      latencyMillis: value(flags.latency),
      paths: value(flags.faultPaths)?.split(",").map((p) => p.trim()).filter((p) => p !== ""),
      seed: value(flags.seed)
    }
    const options: EmulatorOptions = {
      port: flags.port,
      host: flags.host,
      clientId: value(flags.clientId),
      autoApproveAfterMillis: value(flags.autoApprove),
      interval: value(flags.interval),
      accessTokenTtlSeconds: value(flags.accessTokenTtl),
      deviceCodeTtlSeconds: value(flags.deviceCodeTtl),
      faults: Object.values(faults).some((v) => v !== undefined) ? faults : undefined,
      quota: {
        fiveHourLimit: value(flags.quota5h),
        weeklyLimit: value(flags.quotaWeek),
        refusal: flags.quotaRefusal,
        rateLimited: flags.rateLimited,
        retryAfterSeconds: value(flags.retryAfter)
      }
    }
    // Loaded here only: --help, status and token never load the emulator or an HTTP server.
    return Effect.promise(() => import("../emulator/KimiEmulator.js")).pipe(
      Effect.tap(() => Effect.logDebug(`emulator: options ${JSON.stringify(options)}`)),
      Effect.flatMap((emulator) => emulator.serve(options)),
      Effect.catch((error) =>
        err(`${red("error:")} the emulator could not start: ${String((error as { message?: string }).message ?? error)}\n`).pipe(
          Effect.andThen(Effect.sync(() => void (process.exitCode = ExitCode.usage)))
        )),
      Effect.provide(loggingLayer(flags.debug))
    )
  }
).pipe(
  Command.withDescription(
    "Run the local Kimi emulator: Kimi's OAuth device flow (strict about intervals, rotating refresh tokens with " +
      "reuse detection) and a small OpenAI-compatible API, on loopback, until Ctrl-C. Point clients at it with " +
      "KIMI_OAUTH_HOST and KIMI_CODE_BASE_URL."
  ),
  Command.withShortDescription("Run the local Kimi emulator (OAuth and API) on loopback, until Ctrl-C"),
  Command.withExamples([
    { command: "kimi-auth emulator --port 8787 --auto-approve 2000", description: "Approve every login after 2 s" },
    { command: "kimi-auth emulator --error-rate 0.3 --latency 2000 --seed 1", description: "A flaky, slow server" },
    { command: "kimi-auth emulator --quota-5h 3 --quota-refusal 429", description: "A plan used up after three chats" }
  ])
)

/** The root command with every subcommand. */
export const rootCommand = Command.make("kimi-auth").pipe(
  Command.withDescription(
    "Log in to Kimi (Kimi For Coding) with the OAuth device flow and keep the tokens fresh. " +
      "Environment: KIMI_OAUTH_HOST, KIMI_CODE_BASE_URL, OPENCODE_KIMI_AUTH_DIR (default ~/.opencode-kimi-auth). " +
      `Every command takes --help and --debug. ${exitCodeHelp}`
  ),
  Command.withSubcommands([loginCommand, statusCommand, tokenCommand, usageCommand, logoutCommand, emulatorCommand]),
  Command.withExamples([
    { command: "kimi-auth login", description: "Log in once; the tokens are kept fresh from then on" },
    { command: "kimi-auth status --json", description: "Whether you are logged in, for scripts" },
    { command: "kimi-auth token --debug", description: "A valid access token on stdout; what happened on stderr" },
    { command: "kimi-auth emulator --auto-approve 2000", description: "Try it all offline against the local emulator" }
  ])
)
