/**
 * How the CLI names itself in what it prints: `kimi-auth` on PATH, or
 * `npx kimi-auth` after a local install, and its login command for a region.
 * Effect-free, so the CLI's fast paths (`status`, `help`) and the edges'
 * hint words (`src/edge/HintWords.ts`) print the same commands.
 *
 * @since 0.2.0
 */
import type { KimiRegion } from "./Region.js"

/** How the CLI is run: `kimi-auth` on PATH, or `npx kimi-auth` after a local install. */
export type CliInvoker = "kimi-auth" | "npx kimi-auth"

/** The CLI's login command for `region`: `kimi-auth login`, `kimi-auth login --region global`. */
export const cliLoginCommand = (region: KimiRegion | undefined, invoker: CliInvoker = "kimi-auth"): string =>
  `${invoker} login${region === "global" ? " --region global" : ""}`
