/**
 * The options of the promise facade, in plain TypeScript: this module (and
 * everything it imports) names no `effect` type, so the declarations of the
 * package root (`opencode-kimi-auth`, the facade) type-check in a project that
 * never installed `effect`, with or without `skipLibCheck`.
 *
 * They mirror the Effect layer's options (`KimiAuth.KimiAuthLayerOptions`);
 * the facade hands them to that layer, so the compiler checks that every
 * value accepted here is accepted there.
 *
 * @since 0.1.0
 */
import type { KimiRegion } from "../light/Region.js"
import type { SettingsOptions } from "../light/ResolveSettings.js"

/** Units of a duration string such as `"30 seconds"` or `"500 millis"`. */
export type DurationUnit =
  | "nano" | "nanos" | "micro" | "micros" | "milli" | "millis" | "second" | "seconds"
  | "minute" | "minutes" | "hour" | "hours" | "day" | "days" | "week" | "weeks"

/**
 * A duration: milliseconds as a number, a string such as `"30 seconds"`, an
 * object such as `{ minutes: 5 }`, or `[seconds, nanoseconds]`. (Effect's
 * `Duration.Input` without its `Duration` values; the Effect API takes those.)
 */
export type DurationInput =
  | number
  | bigint
  | readonly [seconds: number, nanos: number]
  | `${number} ${DurationUnit}`
  | "Infinity"
  | "-Infinity"
  | {
    readonly weeks?: number | undefined
    readonly days?: number | undefined
    readonly hours?: number | undefined
    readonly minutes?: number | undefined
    readonly seconds?: number | undefined
    readonly milliseconds?: number | undefined
    readonly microseconds?: number | undefined
    readonly nanoseconds?: number | undefined
  }

/** Options of the facade's `KimiOAuthClient`; every field is optional. */
export interface OAuthConfig extends Omit<SettingsOptions, "clientId" | "tokenFilePath" | "region"> {
  /** OAuth client id; Kimi's public client by default. */
  readonly clientId?: string | undefined
  /**
   * Accepted for compatibility and ignored: Kimi's device-flow client is a
   * public client (RFC 8628 section 3.1), it has no secret.
   */
  readonly clientSecret?: string | undefined
  /** Accepted for compatibility and ignored: Kimi's server takes no scope parameter. */
  readonly scopes?: ReadonlyArray<string> | undefined
  /**
   * Token file; by default the chosen account's file in the storage folder
   * (`~/.opencode-kimi-auth/oauth.json` for the default account). Giving it
   * makes the file its own account: not combined with `account`.
   */
  readonly tokenFilePath?: string | undefined
  /**
   * The Kimi account to use: its email, nickname, user id, or a unique
   * prefix (`client.accounts()` and `kimi-auth accounts` list them). Default:
   * the active account of `region`, or (no region named) the account last
   * logged in or switched to; a client naming none follows a login it makes.
   */
  readonly account?: string | undefined
  /**
   * Kimi region: `mainland-cn` (auth.kimi.com, the default) or `global`
   * (auth.kimi.ai). Picks the default OAuth host and API base; `oauthHost`,
   * `apiBaseUrl` and the `KIMI_*` env hosts still win. A login is stored
   * with its region, and refreshes go back to the region that issued it.
   */
  readonly region?: KimiRegion | undefined
  /** Refresh when less than this much lifetime remains (capped for short-lived tokens). Default 300 s. */
  readonly refreshWindow?: DurationInput | undefined
  /** Timeout of each HTTP request. Default 30 s. */
  readonly requestTimeout?: DurationInput | undefined
  /**
   * How long a refresh request, once sent, is awaited: its answer is the only
   * copy of the new refresh token. Default 5 minutes; meanwhile a still-valid
   * token keeps being served.
   */
  readonly refreshAnswerTimeout?: DurationInput | undefined
  /** Longest wait for the cross-process refresh lock. Default 30 s. */
  readonly lockTimeout?: DurationInput | undefined
  /** A lock older than this whose holder cannot be seen alive is taken over. Default 10 s. */
  readonly staleLockAfter?: DurationInput | undefined
  /** Polling tuning. */
  readonly deviceFlow?: {
    /** Added to every wait so clock drift never makes a poll early. Default 250 ms. */
    readonly pollMargin?: DurationInput | undefined
    /** Longest wait between polls after repeated transient faults. Default 60 s. */
    readonly maxBackoff?: DurationInput | undefined
  } | undefined
  /** Refresh tuning. */
  readonly tokenManager?: {
    /** Attempts of one refresh on transient faults (first try included). Default 5. */
    readonly refreshAttempts?: number | undefined
    /** First backoff delay; doubles per attempt, jittered ±20 %. Default 500 ms. */
    readonly retryBaseDelay?: DurationInput | undefined
    /** Longest backoff delay. Default 8 s. */
    readonly retryMaxDelay?: DurationInput | undefined
    /** Longest total time one refresh spends on transient faults, its waits included. Default 20 s. */
    readonly maxRetryTime?: DurationInput | undefined
    /** Longest sleep of the background refresher between checks. Default 60 s. */
    readonly backgroundCheckInterval?: DurationInput | undefined
    /** Run the background refresher's timers unreferenced, so it never keeps a process alive. Default true. */
    readonly unrefTimers?: boolean | undefined
  } | undefined
  /** Keep the token fresh in the background while the client is alive. Default false. */
  readonly backgroundRefresh?: boolean | undefined
}
