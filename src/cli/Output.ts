/**
 * Terminal output of `kimi-auth` as effects: stdout and stderr writers, and
 * the terminal's words (colours, durations, frames) from `Text.ts`, which
 * the Effect-free fast paths print with too.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { write } from "./Pipes.js"

export * from "./Text.js"

/** Writes to stdout (dropped once its reader has gone). */
export const out = (text: string): Effect.Effect<void> => Effect.sync(() => write(process.stdout, text))

/** Writes to stderr (dropped once its reader has gone). */
export const err = (text: string): Effect.Effect<void> => Effect.sync(() => write(process.stderr, text))

