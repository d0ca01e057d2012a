#!/usr/bin/env node
/**
 * The `kimi-auth` executable. A thin entry: `kimi-auth token` with a valid,
 * not-yet-due token on disk is answered without loading Effect
 * (`FastToken.ts`); everything else loads the Effect command line (`run.ts`)
 * on demand. The emulator is loaded only by the `emulator` command.
 *
 * @since 0.1.0
 */
import { fastToken } from "./FastToken.js"
import { quietBrokenPipes, write } from "./Pipes.js"

quietBrokenPipes()
const args = process.argv.slice(2)
const token = args.length === 1 && args[0] === "token" ? fastToken(process.env, Date.now()) : undefined
if (token !== undefined) write(process.stdout, `${token}\n`)
else (await import("./run.js")).runCli()
