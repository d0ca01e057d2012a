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
      // Four forks on two cores: these files mostly wait on child processes, sockets and timers. One fork,
      // vitest's default on two cores, left the cores idle: about 7 min; three took 192 s, four 158 s
      // (build included, a quiet 2-core machine, 2026-12-06).
      maxWorkers: 4,
      exclude: ["test/opencode/**", "test/opencode2/**", "test/pack/**", "test/proxy/**", "**/node_modules/**"]
    }
  })
)
