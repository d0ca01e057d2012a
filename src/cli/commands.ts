/**
 * The `kimi-auth` root command: its description and examples, and the
 * subcommands, one module each under `commands/` (login, accounts and
 * switch, status, token, usage, logout, emulator, and help and version,
 * which the fast path answers first). Each command is a thin edge over the core
 * services: it builds the layer (`RunCommand.ts`), runs one effect, prints
 * the outcome, and turns a typed error into its message and exit code.
 *
 * @since 0.1.0
 */
import { Command } from "effect/cli"
import { accountsCommand, switchCommand } from "./commands/accounts.js"
import { emulatorCommand } from "./commands/emulator.js"
import { helpCommand, versionCommand } from "./commands/help.js"
import { loginCommand } from "./commands/login.js"
import { logoutCommand } from "./commands/logout.js"
import { statusCommand } from "./commands/status.js"
import { tokenCommand } from "./commands/token.js"
import { usageCommand } from "./commands/usage.js"

/** The root command with every subcommand. */
export const rootCommand = Command.make("kimi-auth").pipe(
  Command.withDescription(
    "Log in to Kimi (Kimi For Coding) with the OAuth device flow and keep the tokens fresh. " +
      "Environment: KIMI_OAUTH_HOST, KIMI_CODE_BASE_URL, OPENCODE_KIMI_AUTH_DIR (default ~/.opencode-kimi-auth). " +
      "Every command takes --help and --debug. `kimi-auth help <command>` prints a short page; " +
      "`kimi-auth help exit-codes` the exit codes; `kimi-auth help completions` how to install completions."
  ),
  Command.withSubcommands([
    loginCommand,
    accountsCommand,
    switchCommand,
    statusCommand,
    tokenCommand,
    usageCommand,
    logoutCommand,
    emulatorCommand,
    helpCommand,
    versionCommand
  ]),
  Command.withExamples([
    { command: "kimi-auth login", description: "Log in once; the tokens are kept fresh from then on" },
    { command: "kimi-auth status --json", description: "Whether you are logged in, for scripts" },
    { command: "kimi-auth token --debug", description: "A valid access token on stdout; what happened on stderr" },
    { command: "kimi-auth emulator --auto-approve 2000", description: "Try it all offline against the local emulator" }
  ])
)
