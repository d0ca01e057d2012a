import { defineConfig, mergeConfig } from "vitest/config"
import base from "./vitest.config.js"

// `npm run test:quick`: the contributor's lane. Everything but the suites that install and drive the real
// OpenCode hosts (test/opencode, test/opencode2: ~350 MB of fixtures), the packed-tarball installs
// (test/pack) and the proxy suite (test/proxy, which runs its children under several runtimes).
// `npm test` runs them all; CI runs `npm test`.
export default mergeConfig(
  base,
  defineConfig({
    test: {
      // Three forks on two cores: these files mostly wait on child processes, sockets and timers (one fork,
      // vitest's default on two cores, left a core idle: ~7 min; three: under 3 min on a quiet machine).
      maxWorkers: 3,
      exclude: ["test/opencode/**", "test/opencode2/**", "test/pack/**", "test/proxy/**", "**/node_modules/**"]
    }
  })
)
