/**
 * `kimi-auth emulator`: runs the local Kimi emulator on loopback until
 * Ctrl-C. The flags become `EmulatorOptions` in `emulatorOptions`; the
 * emulator (and its HTTP server) is loaded only when this command runs.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Command, Flag } from "effect/cli"
import type { EmulatorOptions } from "../../emulator/KimiEmulator.js"
import { ExitCode } from "../ExitCode.js"
import { err, red } from "../Output.js"
import { loggingLayer } from "../RunCommand.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

/** A number read from a flag's text; anything else is `Option.none()`. */
export const finite = (text: string): Option.Option<number> => {
  const n = text.trim() === "" ? Number.NaN : Number(text)
  return Number.isFinite(n) ? Option.some(n) : Option.none()
}

/** A port read from a flag's text: a whole number from 0 to 65535; anything else is `Option.none()`. */
export const parsePort = (text: string): Option.Option<number> =>
  /^\d{1,5}$/.test(text.trim()) && Number(text) <= 65535 ? Option.some(Number(text)) : Option.none()

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
  Flag.filterMap(parsePort, () => "Expected a port number from 0 to 65535, such as 8787 (0 picks a free port)."),
  Flag.withDefault(0),
  Flag.withDescription("Port to listen on; 0 picks a free one")
)

const MS = "a number of milliseconds, such as 2000"
const SECONDS = "a number of seconds, such as 5"
const SHARE = "a share from 0 to 1, such as 0.3"
const COUNT = "a whole number, such as 100"

/** The parsed flags of `kimi-auth emulator` (an unset optional flag is `Option.none()`). */
export interface EmulatorFlags {
  readonly port: number
  readonly host: string
  readonly autoApprove: Option.Option<number>
  readonly interval: Option.Option<number>
  readonly accessTokenTtl: Option.Option<number>
  readonly deviceCodeTtl: Option.Option<number>
  readonly errorRate: Option.Option<number>
  readonly dropRate: Option.Option<number>
  readonly rateLimitRate: Option.Option<number>
  readonly retryAfter: Option.Option<number>
  readonly latency: Option.Option<number>
  /** `--chunk-delay`: milliseconds between the chunks of a streamed answer (a slow model). */
  readonly chunkDelay?: Option.Option<number> | undefined
  readonly faultPaths: Option.Option<string>
  readonly seed: Option.Option<number>
  readonly clientId: Option.Option<string>
  readonly quota5h: Option.Option<number>
  readonly quotaWeek: Option.Option<number>
  readonly quotaMonth?: Option.Option<number> | undefined
  /** `--usages`: the `/usages` shape answered (default `new`). */
  readonly usages?: "new" | "old" | undefined
  readonly quotaRefusal: 403 | 429
  readonly rateLimited: boolean
}

/**
 * The emulator's options from its flags. No fault flag means no `faults` at
 * all (a well-behaved server); `--fault-paths` is a comma-separated list;
 * `--retry-after` applies to both the injected 429s and the quota's.
 */
export const emulatorOptions = (flags: EmulatorFlags): EmulatorOptions => {
  const value = <A>(o: Option.Option<A>) => Option.getOrUndefined(o)
  const faults = {
    serverErrorRate: value(flags.errorRate),
    dropRate: value(flags.dropRate),
    tooManyRequestsRate: value(flags.rateLimitRate),
    retryAfterSeconds: value(flags.retryAfter),
    latencyMillis: value(flags.latency),
    chunkDelayMillis: flags.chunkDelay === undefined ? undefined : value(flags.chunkDelay),
    paths: value(flags.faultPaths)?.split(",").map((p) => p.trim()).filter((p) => p !== ""),
    seed: value(flags.seed)
  }
  return {
    port: flags.port,
    host: flags.host,
    clientId: value(flags.clientId),
    autoApproveAfterMillis: value(flags.autoApprove),
    interval: value(flags.interval),
    accessTokenTtlSeconds: value(flags.accessTokenTtl),
    usages: flags.usages ?? "new",
    deviceCodeTtlSeconds: value(flags.deviceCodeTtl),
    faults: Object.values(faults).some((v) => v !== undefined) ? faults : undefined,
    quota: {
      fiveHourLimit: value(flags.quota5h),
      weeklyLimit: value(flags.quotaWeek),
      monthlyLimit: flags.quotaMonth === undefined ? undefined : value(flags.quotaMonth),
      refusal: flags.quotaRefusal,
      rateLimited: flags.rateLimited,
      retryAfterSeconds: value(flags.retryAfter)
    }
  }
}

/** `kimi-auth emulator`. */
export const emulatorCommand = Command.make(
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
    chunkDelay: optionalNumber("chunk-delay", "Milliseconds between the chunks of a streamed answer (a slow model)", MS),
    faultPaths: Flag.optional(Flag.String("fault-paths")).pipe(
      Flag.withDescription("Comma-separated paths the faults apply to (default /api/oauth,/coding/v1)")
    ),
    seed: optionalNumber("seed", "Seed that makes the injected faults deterministic", "a number, such as 1"),
    clientId: Flag.optional(Flag.String("client-id")).pipe(
      Flag.withDescription("The accepted OAuth client id (default: Kimi's public client id)")
    ),
    quota5h: optionalNumber("quota-5h", "Chat completions allowed per rolling 5-hour window (default 100)", COUNT),
    quotaWeek: optionalNumber("quota-week", "Chat completions allowed per weekly window (default 1000)", COUNT),
    quotaMonth: optionalNumber("quota-month", "Chat completions allowed per monthly window (default 4000)", COUNT),
    usages: Flag.Literals("usages", ["new", "old"]).pipe(
      Flag.withDefault("new" as const),
      Flag.withDescription(
        "The /usages shape: new (the new plans' usages.limit_5h/limit_7d/limit_month_* ratios and boosterWallet) or old (usage + limits[])"
      )
    ),
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
    const options = emulatorOptions(flags)
    // Loaded here only: --help, status and token never load the emulator or an HTTP server.
    return Effect.promise(() => import("../../emulator/KimiEmulator.js")).pipe(
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
  Command.withShortDescription(summaryOf("emulator")),
  Command.withExamples(examplesOf("emulator"))
)
