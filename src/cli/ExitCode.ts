/**
 * Exit codes of `kimi-auth`, one per kind of failure, so scripts can tell a
 * refusal from a network fault without parsing messages.
 *
 * @since 0.1.0
 */

/** The exit codes; documented in `kimi-auth --help` and the README. */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  denied: 3,
  expired: 4,
  network: 5,
  invalidResponse: 6,
  notLoggedIn: 7,
  storage: 8,
  /** Stopped by SIGINT (Ctrl-C): 128 + 2. */
  interrupted: 130,
  /** Stopped by SIGTERM: 128 + 15. */
  terminated: 143
} as const

/** One exit code. */
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode]

/** The exit code for a typed error, by tag. */
export const exitCodeFor = (tag: string): ExitCode => {
  switch (tag) {
    case "ConfigError":
      return ExitCode.usage
    case "AccessDeniedError":
      return ExitCode.denied
    case "DeviceCodeExpiredError":
      return ExitCode.expired
    case "NetworkError":
    case "ServerError":
    case "RateLimitedError":
      return ExitCode.network
    case "InvalidResponseError":
    case "BodyTooLargeError":
    case "OAuthError":
    case "KimiApiError":
      return ExitCode.invalidResponse
    case "NotLoggedInError":
    case "InvalidGrantError":
    case "CorruptTokenFileError":
      return ExitCode.notLoggedIn
    case "TokenStoreError":
    case "LockTimeoutError":
      return ExitCode.storage
    default:
      return ExitCode.unexpected
  }
}

/** What each exit code means, in a few words (README's "Exit codes" line says the same). */
export const EXIT_CODE_MEANINGS: ReadonlyArray<readonly [code: ExitCode, meaning: string]> = [
  [ExitCode.ok, "ok"],
  [ExitCode.unexpected, "internal error (a bug)"],
  [ExitCode.usage, "bad configuration or usage"],
  [ExitCode.denied, "login refused"],
  [ExitCode.expired, "code expired"],
  [ExitCode.network, "network or server unavailable"],
  [ExitCode.invalidResponse, "invalid server response"],
  [ExitCode.notLoggedIn, "not logged in"],
  [ExitCode.storage, "token storage problem"],
  [ExitCode.interrupted, "interrupted (Ctrl-C)"],
  [ExitCode.terminated, "terminated (SIGTERM)"]
]

/** The exit codes in one line, for the Effect commands' long descriptions. */
export const exitCodeHelp = `exit codes: ${EXIT_CODE_MEANINGS.map(([code, meaning]) => `${code} ${meaning}`).join(", ")}`
