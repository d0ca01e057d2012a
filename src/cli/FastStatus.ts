/**
 * `kimi-auth status [--json] [--account <name>]` without the Effect runtime,
 * for the common cases: status lines in shell prompts run it on every
 * prompt. It reads the same files by the same Effect-free rules as the full
 * command (`resolveAccountSettings`, `parseTokenFileText`, `deviceIdOfText`),
 * builds the status with the core's rule (`loginStatusOf`) and prints it
 * with the command's own words (`statusOutput`), byte for byte alike.
 *
 * It answers only when the full command would print the same thing without
 * a repair, a move, a warning or an error: anything else (`--debug` or
 * `DEBUG`, another flag, a configuration or account error, no storage
 * folder, no valid `device_id`, a file it cannot parse, a link, loose modes,
 * a refusal note beside the login) returns `undefined`, and the caller runs
 * the full command, which says what is wrong.
 *
 * @since 0.2.0
 */
import * as path from "node:path"
import { resolveAccountSettings } from "../light/AccountSettings.js"
import type { CliInvoker } from "../light/CliWords.js"
import { debugFromEnv } from "../light/Debug.js"
import { DEVICE_ID_LIMIT_BYTES, deviceIdOfText } from "../light/DeviceIdText.js"
import { loginStatusOf, type StoredLogin } from "../light/LoginState.js"
import { type Env, issuerFor } from "../light/ResolveSettings.js"
import { lstatOrMissing, readSmallFileSync, TOKEN_FILE_LIMIT_BYTES } from "../light/SmallFile.js"
import { parseTokenFileText } from "../light/TokenValidation.js"
import { ExitCode } from "./ExitCode.js"
import { DEFAULT_REFRESH_WINDOW_SECONDS, plainAndOurs } from "./FastToken.js"
import { namedAccount, statusExitCode, statusOutput, statusState, type StatusStyle } from "./StatusView.js"

/** The flags of a `status` the fast path answers. */
export interface StatusArgs {
  readonly json: boolean
  readonly account: string | undefined
}

/**
 * `status`'s flags when they are only `--json` and `--account <name>`
 * (or `--account=<name>`), each at most once; `undefined` for anything else
 * (the full parser decides, and explains).
 */
export const parseStatusArgs = (args: ReadonlyArray<string>): StatusArgs | undefined => {
  if (args[0] !== "status") return undefined
  let json = false
  let account: string | undefined
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!
    if (a === "--json" && !json) json = true
    else if (a === "--account" && account === undefined && i + 1 < args.length && !args[i + 1]!.startsWith("-")) account = args[++i]
    else if (a.startsWith("--account=") && account === undefined && a.length > 10) account = a.slice(10)
    else return undefined
  }
  return { json, account }
}

/** What the fast path prints: stdout and the exit code. */
export interface FastAnswer {
  readonly stdout: string
  readonly exitCode: number
}

/** The stored login, `undefined` for none, or `"Decline"` when the full command must read it. */
const readLogin = (tokenFilePath: string): StoredLogin & { readonly oauthHost?: string | undefined; readonly apiBaseUrl?: string | undefined } | undefined | "Decline" => {
  const st = lstatOrMissing(tokenFilePath)
  if (st === undefined) return undefined
  if (!plainAndOurs(st, false)) return "Decline"
  const found = readSmallFileSync(tokenFilePath, TOKEN_FILE_LIMIT_BYTES)
  if (found._tag === "Missing") return undefined
  if (found._tag !== "Text") return "Decline"
  const parsed = parseTokenFileText(found.text)
  if (!parsed.ok) return "Decline"
  // A refusal note beside it: the full command reads it by its codec (Notes.ts).
  return lstatOrMissing(`${tokenFilePath}.refused`) === undefined ? parsed.value : "Decline"
}

/**
 * The fast `status` for `args` at `nowMillis`, or `undefined` when the full
 * command must answer. Never throws, never writes.
 */
export const fastStatus = (
  args: ReadonlyArray<string>,
  env: Env,
  nowMillis: number,
  style: StatusStyle,
  invoker: () => CliInvoker
): FastAnswer | undefined => {
  const flags = parseStatusArgs(args)
  if (flags === undefined || debugFromEnv(env)) return undefined
  const resolved = resolveAccountSettings({ account: flags.account }, env)
  if (!resolved.ok) return undefined
  const settings = resolved.value
  try {
    const dir = lstatOrMissing(path.dirname(settings.tokenFilePath))
    if (dir === undefined || !plainAndOurs(dir, true)) return undefined
    const idFile = lstatOrMissing(settings.deviceIdPath)
    if (idFile === undefined || !idFile.isFile()) return undefined
    const idText = readSmallFileSync(settings.deviceIdPath, DEVICE_ID_LIMIT_BYTES)
    const deviceId = idText._tag === "Text" ? deviceIdOfText(idText.text) : undefined
    if (deviceId === undefined) return undefined
    const stored = readLogin(settings.tokenFilePath)
    if (stored === "Decline") return undefined
    const status = loginStatusOf(
      {
        deviceId,
        tokenFilePath: settings.tokenFilePath,
        deviceIdPath: settings.deviceIdPath,
        ...issuerFor(settings, stored),
        region: settings.region,
        refreshWindowSeconds: DEFAULT_REFRESH_WINDOW_SECONDS
      },
      stored,
      undefined,
      nowMillis / 1000
    )
    return {
      stdout: statusOutput(status, namedAccount(settings.account), flags.json, style, invoker()),
      exitCode: statusExitCode(statusState(status)) ?? ExitCode.ok
    }
  } catch {
    return undefined
  }
}
