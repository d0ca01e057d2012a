/**
 * The runtime running the suite, and how its child processes are made to run
 * the same one. The Bun lane (scripts/test-bun.sh) runs vitest itself under
 * Bun, so `process.execPath` is Bun there and every fixture a test spawns
 * with it runs under Bun too (OpenCode's Bun needs `BUN_BE_BUN=1`, which
 * children inherit with the environment). Preloads differ: Node reads
 * `NODE_OPTIONS`, Bun `BUN_OPTIONS`; module hooks (`--import` with
 * `module.register`) are Node's, a `Bun.plugin` in a preload is Bun's.
 */

/** The Bun version when the suite runs under Bun, else `undefined`. */
export const bunVersion: string | undefined = process.versions.bun

/** True when the suite runs under Bun. */
export const isBun = bunVersion !== undefined

/** "Bun 1.3.14" or "Node v20.20.2", for messages. */
export const runtimeName = isBun ? `Bun ${bunVersion}` : `Node ${process.version}`

/**
 * Environment that preloads `file` (CommonJS or ESM) into a child process of
 * the suite's runtime: `NODE_OPTIONS=--require|--import` for Node,
 * `BUN_OPTIONS=--preload` for Bun. Each runtime ignores the other's variable.
 */
export const preloadEnv = (file: string, kind: "require" | "import" = "require"): Record<string, string> => ({
  NODE_OPTIONS: kind === "require" ? `--require ${file}` : `--import=${file}`,
  BUN_OPTIONS: `--preload ${file}`
})
