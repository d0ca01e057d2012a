#!/usr/bin/env node
/**
 * The `kimi-auth` executable. A thin entry: what scripts and prompts run
 * often is answered without loading Effect: `token` with a valid, not-yet-due
 * token on disk (`FastToken.ts`), `status` in its common states
 * (`FastStatus.ts`), and the help pages and the version (`Help.ts`).
 * Everything else loads the Effect command line (`run.ts`) on demand; the
 * emulator is loaded only by the `emulator` command.
 *
 * @since 0.1.0
 */
import { fastStatus } from "./FastStatus.js"
import { fastToken } from "./FastToken.js"
import { helpAnswer, helpRequest, packageVersion } from "./Help.js"
import { currentInvoker } from "./Invoker.js"
import { quietBrokenPipes, write } from "./Pipes.js"
import { bold, dim, green, red } from "./Text.js"

/** What the fast paths print, or `undefined` when the full command line must run. */
const fastAnswer = (args: ReadonlyArray<string>): { stdout: string; stderr?: string; exitCode: number } | undefined => {
  if (args.length === 1 && args[0] === "token") {
    const token = fastToken(process.env, Date.now())
    return token === undefined ? undefined : { stdout: `${token}\n`, exitCode: 0 }
  }
  const help = helpRequest(args)
  if (help !== undefined) return helpAnswer(help, packageVersion(), currentInvoker())
  return args[0] === "status" ? fastStatus(args, process.env, Date.now(), { bold, dim, red, green }, currentInvoker) : undefined
}

quietBrokenPipes()
const answer = fastAnswer(process.argv.slice(2))
if (answer === undefined) (await import("./run.js")).runCli()
else {
  if (answer.stdout !== "") write(process.stdout, answer.stdout)
  if (answer.stderr) write(process.stderr, answer.stderr)
  process.exitCode = answer.exitCode
}
