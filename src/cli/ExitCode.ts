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

/** The help text's table of exit codes. */
export const exitCodeHelp = [
  "exit codes: 0 ok, 1 internal error (a bug), 2 bad configuration or usage, 3 login refused, 4 code expired,",
  "5 network or server unavailable, 6 invalid server response, 7 not logged in,",
  "8 token storage problem, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM)"
].join(" ")
