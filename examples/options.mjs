// Shared by the examples: `--region mainland-cn|global` from the command line, and how a quota window prints. Everything else
// (KIMI_OAUTH_HOST, KIMI_CODE_OAUTH_HOST, KIMI_CODE_BASE_URL, OPENCODE_KIMI_AUTH_DIR) is read from
// the environment by the package itself, as the CLI and the plugin do.
const at = process.argv.indexOf("--region")
/** The options every example passes: `{ region }` when `--region` was given, else `{}`. */
export const options = at > 0 && process.argv[at + 1] ? { region: process.argv[at + 1] } : {}
/** The question the examples ask. */
export const prompt = process.env.KIMI_EXAMPLE_PROMPT ?? "Say hello in five words."

/** A quota window's use: counts where Kimi sends them (the old shape), else the share used (the new plans' shape). */
export const shown = (w) =>
  w.used !== undefined && w.limit !== undefined
    ? `${w.used}/${w.limit}`
    : w.usedRatio !== undefined
    ? `${Math.round(w.usedRatio * 100)}%`
    : "?"
