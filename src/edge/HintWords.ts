/**
 * Each edge's words for what to run next ({@link NextStep}): the errors
 * carry the hint as data, and each edge renders it for its host, with no
 * edge patching another's text.
 *
 * - The CLI names its own command, with the region's flag, and through `npx`
 *   after a local install ({@link cliHintWords}).
 * - OpenCode 1.18 names `opencode auth login -p <provider>` first, then the
 *   CLI; OpenCode 2 names `/connect` (its TUI) and
 *   `opencode auth login <provider> --method kimi-device`
 *   ({@link openCodeHintWords}).
 * - The Effect API, the facade and the AI SDK keep the errors' default
 *   `message` (`defaultHintWords` in `Errors.ts`).
 *
 * @since 0.2.0
 */
import type { HintWords, NextStep } from "../Errors.js"
import { type CliInvoker, cliLoginCommand } from "../light/CliWords.js"
import { DEFAULT_REGION, type KimiRegion, REGIONS } from "../light/Region.js"

export { type CliInvoker, cliLoginCommand } from "../light/CliWords.js"

/** `then` prefixed by moving the hint's path away, for a `RemovePath` hint. */
const withRemoval = (hint: NextStep, then: string): string =>
  hint._tag === "RemovePath" ? `move ${hint.path} away, then ${then}` : then

/**
 * The CLI's words: its command, then OpenCode 1's for the same region (the
 * CLI and the plugin share the login): "run \`kimi-auth login --region
 * global\` (or \`opencode auth login -p kimi-code-plan-global\` in OpenCode)".
 * The hint's region wins; else `region` (the stored login's, or the
 * configured one); else mainland-cn's, the default.
 */
export const cliHintWords = (region: KimiRegion | undefined, invoker: CliInvoker = "kimi-auth"): HintWords => (hint) => {
  const at = hint.region ?? region ?? DEFAULT_REGION
  return withRemoval(
    hint,
    `run \`${cliLoginCommand(at, invoker)}\` (or \`opencode auth login -p ${REGIONS[at].providerId}\` in OpenCode)`
  )
}

/**
 * Which OpenCode hosts the plugin: the 1.18 line (`opencode auth login -p <provider>`) or OpenCode 2
 * (`/connect` in its TUI, `opencode auth login <provider> --method kimi-device` from a shell).
 */
export type OpenCodeLine = "v1" | "v2"

/** OpenCode's login for one provider, its own command first (a plugin user may have no `kimi-auth`). */
export const openCodeLogin = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): string => {
  const cli = `\`${cliLoginCommand(region)}\``
  // `kimi-device`: V2Plugin's V2_METHOD_ID (test/edge/HintWords.test.ts holds them equal). OpenCode 2.1 sends a
  // login only through its own credential row, so `kimi-auth login` alone is not named there (NOTES.md §15).
  return line === "v2"
    ? `run \`opencode auth login ${providerId} --method kimi-device\` (or, in OpenCode, use \`/connect\`, pick ${REGIONS[region].label} (${providerId}), then "Kimi device login")`
    : `run \`opencode auth login -p ${providerId}\` (or ${cli})`
}

/** The plugin's words: always its own provider and region (Kimi would refuse any other login there). */
export const openCodeHintWords = (providerId: string, region: KimiRegion, line: OpenCodeLine = "v1"): HintWords => (hint) =>
  withRemoval(hint, openCodeLogin(providerId, region, line))

