/**
 * What to run next after an error, as data: an error carries it (its
 * `hint`), and each edge words it in its host's terms (the CLI's command,
 * OpenCode 1's `auth login -p`, OpenCode 2's `/connect`). Effect-free, so the
 * promise facade's declarations name it without naming `effect`.
 *
 * @since 0.2.0
 */
import type { KimiRegion } from "./Region.js"

/** The next step: log in (at a region), or move a path out of the way (then log in). */
export type NextStep =
  | { readonly _tag: "LogIn"; readonly region?: KimiRegion | undefined }
  | { readonly _tag: "RemovePath"; readonly path: string; readonly region?: KimiRegion | undefined }
