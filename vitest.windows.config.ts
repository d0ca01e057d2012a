// The Windows lane (issue #18): scripts/test-windows.sh runs it, after installing Wine and
// fetching node.exe for Windows. Files are test/windows/*.wine.ts, so `npm test`
// (test/**/*.test.ts) never picks them up. One file, tests in order: each spawns
// several Windows processes, and Wine's server is shared.
import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

export default defineConfig({
  test: {
    ...base.test,
    include: ["test/windows/**/*.wine.ts"],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: "forks"
  }
})
