/**
 * The flags several `kimi-auth` commands share (`--debug`, `--json`), and
 * whether debugging is on (the flag, or `DEBUG` naming this package).
 *
 * @since 0.1.0
 */
import { Flag } from "effect/cli"
import { debugFromEnv } from "../light/Debug.js"

export { debugFromEnv }

/** `--debug`: debug logs on stderr. */
export const debugFlag = Flag.Boolean("debug").pipe(
  Flag.withDefault(false),
  Flag.withDescription("Print debug logs on stderr (secrets are always redacted). Also DEBUG=opencode-kimi-auth:*")
)

/** `--json`: JSON instead of text. */
export const jsonFlag = Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("Print JSON instead of text"))

/** Whether debug output is on: `--debug`, or `DEBUG` names this package. */
export const debugEnabled = (flags: { readonly debug: boolean }): boolean => flags.debug || debugFromEnv()

/** `--account <name>`: the Kimi account to use (user id, email, nickname or a unique prefix); default: the active one. */
export const accountFlag = Flag.optional(Flag.String("account")).pipe(
  Flag.withDescription(
    "The Kimi account to use: its email, nickname, user id or a unique prefix (`kimi-auth accounts` lists them). " +
      "Default: the account last logged in or switched to"
  )
)
