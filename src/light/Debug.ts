/**
 * The one reading of `DEBUG` for every edge: the CLI (with its `--debug`),
 * its fast `token` path, both OpenCode plugins and the runtime bootstrap of
 * `src/edge/`. Effect-free, so the OpenCode entries and the CLI fast path
 * read it without loading the core.
 *
 * `DEBUG` is read as the `debug` package reads it: names separated by commas
 * or spaces; this package's debug output is on when one of them is `*`,
 * `opencode-kimi-auth` or `opencode-kimi-auth:*`. A name such as
 * `opencode-kimi-auth:lock` (a namespace this package does not have) or
 * another package's name leaves it off.
 *
 * @since 0.2.0
 */

/** The `DEBUG` names that turn this package's debug output on. */
const NAMES: ReadonlySet<string> = new Set(["*", "opencode-kimi-auth", "opencode-kimi-auth:*"])

/** Whether `DEBUG` (from `env`, by default the process's) names this package or everything. */
export const debugFromEnv = (env: Readonly<Record<string, string | undefined>> = process.env): boolean =>
  (env["DEBUG"] ?? "").split(/[\s,]+/).some((name) => NAMES.has(name))

/** One debug line on stderr, `opencode-kimi-auth: <message>`, when {@link debugFromEnv}; never throws. */
export const debugLine = (message: string, env: Readonly<Record<string, string | undefined>> = process.env): void => {
  if (!debugFromEnv(env)) return
  try {
    process.stderr.write(`opencode-kimi-auth: ${message}\n`)
  } catch {
    // a closed stderr must not reach the host
  }
}
