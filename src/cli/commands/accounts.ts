/**
 * `kimi-auth accounts` (the Kimi accounts logged in here: name, region,
 * whether active, the login's state) and `kimi-auth switch <account>` (make
 * one the active account of its region, and the current one). The rendering
 * is pure and tested as such.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import { Argument, Command } from "effect/cli"
import { type AccountStatus, listAccounts, switchAccount } from "../../accounts/Accounts.js"
import { accountLabel } from "../../light/AccountChoice.js"
import { debugFlag, jsonFlag } from "../CommonFlags.js"
import { exitCodeHelp } from "../ExitCode.js"
import { bold, dim, green, humanDuration, out } from "../Output.js"
import { run } from "../RunCommand.js"
import { examplesOf, summaryOf } from "../HelpPages.js"

const STATE_WORDS: Record<AccountStatus["state"], string> = {
  valid: "logged in",
  expired: "logged in (access token expired; refreshed on next use)",
  none: "no login (run `kimi-auth login`)",
  damaged: "unreadable token file (run `kimi-auth status --account …`)"
}

/** One account as `--json` prints it (no secret, no token). */
export const accountJson = (s: AccountStatus) => ({
  label: s.label,
  user_id: s.account.userId ?? null,
  nickname: s.account.nickname ?? null,
  email: s.account.email ?? null,
  region: s.account.region,
  active: s.active,
  current: s.current,
  default: s.account.isDefault,
  state: s.state,
  expires_at: s.expiresAt ?? null,
  token_file: s.path
})

/** The text of `kimi-auth accounts`: one block per account, the active ones marked. */
export const accountsText = (
  statuses: ReadonlyArray<AccountStatus>,
  nowSeconds: number,
  style: { readonly bold: (s: string) => string; readonly dim: (s: string) => string; readonly green: (s: string) => string }
): string => {
  if (statuses.length === 0) return "No Kimi account is logged in here. Run `kimi-auth login`.\n"
  return statuses.map((s) => {
    const mark = s.active ? style.green("*") : " "
    const tags = [s.active ? `active for ${s.account.region}` : undefined, s.current ? "current" : undefined]
      .filter((t) => t !== undefined)
    const until = s.state === "valid" && s.expiresAt !== undefined ? `, access token valid for ${humanDuration(s.expiresAt - nowSeconds)}` : ""
    return `${mark} ${style.bold(s.label)}${tags.length > 0 ? ` (${tags.join(", ")})` : ""}\n` +
      `    ${STATE_WORDS[s.state]}${until}\n` +
      style.dim(`    user id: ${s.account.userId ?? "not known yet"}; token file: ${s.path}\n`)
  }).join("")
}

/** `kimi-auth accounts`. */
export const accountsCommand = Command.make("accounts", { json: jsonFlag, debug: debugFlag }, (flags) =>
  run(
    "accounts",
    flags,
    Effect.gen(function*() {
      const statuses = yield* listAccounts({ learn: true })
      yield* out(
        flags.json
          ? JSON.stringify({ accounts: statuses.map(accountJson) }) + "\n"
          : accountsText(statuses, Math.floor(Date.now() / 1000), { bold, dim, green })
      )
    })
  )).pipe(
    Command.withDescription(
      "List the Kimi accounts logged in on this machine: name (nickname or email), region, which one is active for " +
        "each region (what OpenCode's provider of that region, the AI SDK and the CLI use), and the state of its login. " +
        "An account not known by name yet is asked once (GET /me). Never prints a secret. " + exitCodeHelp
    ),
    Command.withShortDescription(summaryOf("accounts")),
    Command.withExamples(examplesOf("accounts"))
  )

/** `kimi-auth switch <account>`. */
export const switchCommand = Command.make(
  "switch",
  {
    account: Argument.String("account").pipe(
      Argument.withDescription("The account: its email, nickname, user id, or a unique prefix (`kimi-auth accounts`)")
    ),
    json: jsonFlag,
    debug: debugFlag
  },
  (flags) =>
    run(
      "switch",
      flags,
      Effect.gen(function*() {
        const account = yield* switchAccount(flags.account)
        yield* out(
          flags.json
            ? JSON.stringify({ event: "switched", label: accountLabel(account), user_id: account.userId ?? null, region: account.region }) + "\n"
            : `${green("✓")} Now using ${bold(accountLabel(account))} for ${account.region} (and wherever no region is named).\n`
        )
      })
    )
).pipe(
  Command.withDescription(
    "Make an account the active one of its region: the CLI, the facade, the AI SDK and OpenCode's provider of that " +
      "region use it (a running OpenCode 1.18 within seconds, on its next request). Other accounts stay logged in. " +
      exitCodeHelp
  ),
  Command.withShortDescription(summaryOf("switch")),
  Command.withExamples(examplesOf("switch"))
)
