// The fault suite (issue #6): `npm run test:faults` runs it through
// scripts/test-faults.mjs, which also scans every line of output for token
// values. Files are test/faults/*.fault.ts, so `npm test` (test/**/*.test.ts)
// never picks them up. Importing the default config also installs its
// Map.groupBy polyfill (Node 20).
import { defineConfig } from "vitest/config"
import base from "./vitest.config.js"

export default defineConfig({
  test: {
    ...base.test,
    include: ["test/faults/**/*.fault.ts"],
    testTimeout: 240_000,
    hookTimeout: 60_000,
    // One file at a time: the suites time real child processes and latency on a 2-core machine,
    // and the secret scan runs the whole default suite as a child.
    fileParallelism: false,
    pool: "forks"
  }
})
