#!/usr/bin/env node
/**
 * The `kimi-auth` executable. A thin entry: it loads the Effect command line
 * (`run.ts`) only when it is needed, so the shell scripts' `$(kimi-auth token)`
 * starts like a small tool.
 *
 * @since 0.1.0
 */
const { runCli } = await import("./run.js")
runCli()
