/**
 * The help pages of `kimi-auth`, as data: one short page per command (a
 * one-line summary, usage, flags, an example or two) and one per topic (exit
 * codes, completions, environment). Effect-free: `kimi-auth --help`,
 * `help [topic]` and `<command> --help` print them from the fast path
 * (`Help.ts`), and the Effect commands take their one-line summaries from
 * here. `effect/cli`'s own pages stay for what the fast path does not answer.
 *
 * @since 0.2.0
 */
import { EXIT_CODE_MEANINGS, ExitCode } from "./ExitCode.js"

/** One help page of a command. `{k}` in any text stands for how the CLI is run (`kimi-auth` or `npx kimi-auth`). */
export interface CommandPage {
  readonly summary: string
  /** After `{k} <name>`. */
  readonly usage: string
  readonly flags: ReadonlyArray<readonly [flag: string, text: string]>
  readonly examples: ReadonlyArray<readonly [command: string, text: string]>
  /** Lines after the examples (a note or two). */
  readonly notes?: ReadonlyArray<string>
}

const debug = ["--debug", "Debug logs on stderr (never a secret); also DEBUG=opencode-kimi-auth:*"] as const
const json = ["--json", "JSON instead of text (one object per line)"] as const
const account = ["--account <name>", "Use this account (email, nickname, user id or a unique prefix)"] as const

/** Every command's page, in the order the root page lists them. */
export const COMMAND_PAGES = {
  login: {
    summary: "Log in with the OAuth device flow (a link and a code to approve in the browser)",
    usage: "[--region mainland-cn|global] [--no-browser] [--json]",
    flags: [
      ["--region <region>", "mainland-cn (auth.kimi.com, the default) or global (auth.kimi.ai)"],
      ["--browser, --no-browser", "Open the approval page in a browser, or only print it"],
      json,
      debug
    ],
    examples: [
      ["{k} login", "Log in once; the tokens are kept fresh from then on"],
      ["{k} login --no-browser", "Only print the link and the code (SSH, containers)"],
      ["{k} login --region global", "Log in to Kimi's global region (kimi.ai)"]
    ]
  },
  accounts: {
    summary: "List the Kimi accounts logged in here, and the active one of each region",
    usage: "[--json]",
    flags: [json, debug],
    examples: [["{k} accounts", "Which accounts, which is active"], ["{k} accounts --json", "For scripts"]]
  },
  switch: {
    summary: "Make an account the active one of its region",
    usage: "<account> [--json]",
    flags: [["<account>", "Its email, nickname, user id, or a unique prefix"], json, debug],
    examples: [
      ["{k} switch ada@example.com", "Use Ada's account from now on"],
      ["{k} switch ada", "A unique prefix of the email, nickname or user id is enough"]
    ]
  },
  status: {
    summary: "Show whether you are logged in and until when; never a secret",
    usage: "[--json] [--account <name>]",
    flags: [json, account, debug],
    examples: [["{k} status", "Logged in? Until when?"], ["{k} status --json", "For scripts and prompts"]],
    notes: ["Exit code 7 when not logged in, or when Kimi refused the last refresh. Makes no request."]
  },
  token: {
    summary: "Print a valid access token (refreshed first when due) and nothing else",
    usage: "[--account <name>]",
    flags: [account, debug],
    examples: [[
      'curl -H "Authorization: Bearer $({k} token)" https://api.kimi.com/coding/v1/models',
      "Call the API with a fresh token"
    ]],
    notes: ["Safe from many processes at once: one refresh, one rotation."]
  },
  usage: {
    summary: "Show the plan's quota: each window's use and when it resets",
    usage: "[--json] [--account <name>]",
    flags: [json, account, debug],
    examples: [["{k} usage", "How much is used, and when it resets"], ["{k} usage --json", "For scripts and status bars"]]
  },
  logout: {
    summary: "Log out: remove the stored tokens and OpenCode's copy of the Kimi login",
    usage: "[--account <name>]",
    flags: [account, debug],
    examples: [["{k} logout", "Forget the current account's login"], [
      "{k} logout --account ada@example.com",
      "Log one account out"
    ]],
    notes: ["The device id is kept; other OpenCode logins are untouched."]
  },
  emulator: {
    summary: "Run the local Kimi emulator (OAuth and API) on loopback, until Ctrl-C",
    usage: "[--port <n>] [--auto-approve <ms>] [fault flags…]",
    flags: [
      ["--port <n>, --host <addr>", "Where to listen (0: a free port; loopback by default)"],
      ["--auto-approve <ms>", "Approve every login this many ms after it starts"],
      ["--interval, --access-token-ttl, --device-code-ttl", "Polling interval and lifetimes, in seconds"],
      ["--error-rate, --drop-rate, --rate-limit-rate", "Shares (0..1) of 5xx answers, dropped connections, 429s"],
      ["--retry-after, --latency, --fault-paths, --seed", "Shape the faults; --seed makes them repeatable"],
      ["--chunk-delay <ms>", "A slow model: a pause between the chunks of a streamed answer"],
      ["--quota-5h, --quota-week, --quota-month", "Chat completions allowed per window"],
      ["--quota-refusal 403|429, --rate-limited", "How a used-up quota or a rate limit is answered"],
      ["--usages new|old, --client-id <id>", "The /usages shape; the accepted OAuth client id"],
      ["--debug", "One line per request on stderr (never a secret)"]
    ],
    examples: [
      ["{k} emulator --auto-approve 2000", "Try it all offline"],
      ["{k} emulator --error-rate 0.3 --latency 2000 --seed 1", "A flaky, slow server"],
      ["{k} emulator --quota-5h 3 --quota-refusal 429", "A plan used up after three chats"]
    ],
    notes: ["Point clients at it with KIMI_OAUTH_HOST and KIMI_CODE_BASE_URL (it prints both)."]
  }
} as const satisfies Record<string, CommandPage>

/** A command that has a page. */
export type CommandName = keyof typeof COMMAND_PAGES

/** A command's one-line summary (the Effect commands' short description too). */
export const summaryOf = (name: CommandName): string => COMMAND_PAGES[name].summary

/** A command's examples as `effect/cli`'s `Command.withExamples` takes them (`{k}` as `kimi-auth`): one list for both pages. */
export const examplesOf = (name: CommandName): Array<{ readonly command: string; readonly description: string }> =>
  COMMAND_PAGES[name].examples.map(([command, description]) => ({ command: command.replaceAll("{k}", "kimi-auth"), description }))

/** What to do about an exit code, after its meaning. */
const EXIT_CODE_ADVICE: Readonly<Record<number, string>> = {
  [ExitCode.unexpected]: "please report it",
  [ExitCode.usage]: "check the flags and the KIMI_* variables",
  [ExitCode.denied]: "log in again and approve",
  [ExitCode.expired]: "log in again and approve within the time shown",
  [ExitCode.network]: "try again later; check a proxy",
  [ExitCode.invalidResponse]: "a proxy, or a wrong KIMI_CODE_BASE_URL?",
  [ExitCode.notLoggedIn]: "log in (also when Kimi refused the last refresh)",
  [ExitCode.storage]: "the message names the file and what to do"
}

/** The exit codes, with what each means and what to do. */
export const EXIT_CODES: ReadonlyArray<readonly [code: number, text: string]> = EXIT_CODE_MEANINGS.map((
  [code, meaning]
) => [code, EXIT_CODE_ADVICE[code] === undefined ? meaning : `${meaning}: ${EXIT_CODE_ADVICE[code]}`])

/** The topic pages beside the commands: `help exit-codes`, `help completions`, `help environment`. */
export const TOPIC_PAGES: Readonly<Record<string, ReadonlyArray<string>>> = {
  "exit-codes": [
    "Exit codes of {k} (the same for every command):",
    "",
    ...EXIT_CODES.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`)
  ],
  completions: [
    "Shell completions for {k}: print the script once, where your shell looks for it.",
    "",
    "  bash:  {k} --completions bash > ~/.local/share/bash-completion/completions/kimi-auth",
    "  zsh:   mkdir -p ~/.zsh/completions && {k} --completions zsh > ~/.zsh/completions/_kimi-auth",
    "         then in ~/.zshrc, before compinit: fpath=(~/.zsh/completions $fpath)",
    "  fish:  {k} --completions fish > ~/.config/fish/completions/kimi-auth.fish",
    "",
    "Open a new shell afterwards. Completions complete the command `kimi-auth`: they need it on PATH",
    "(a global install or `npm link`)."
  ],
  environment: [
    "Environment read by {k}:",
    "",
    "  OPENCODE_KIMI_AUTH_DIR   storage folder (default ~/.opencode-kimi-auth)",
    "  KIMI_OAUTH_HOST          OAuth host (also KIMI_CODE_OAUTH_HOST), e.g. an emulator's",
    "  KIMI_CODE_BASE_URL       API base, e.g. an emulator's",
    "  DEBUG                    opencode-kimi-auth:* prints debug logs on stderr, as --debug",
    "  NO_COLOR                 no colours"
  ]
}
