/**
 * The secret scan, part 1: runs the whole default test suite (`vitest run`,
 * vitest.config.ts) as a child and hands everything it printed to the scan
 * that scripts/test-faults.mjs runs over all outputs at the end (the
 * emulator's token values and the fault suite's canaries; none may appear).
 * This file checks it here too, so a hit points at the default suite.
 * KIMI_FAULTS_SKIP_DEFAULT_SUITE=1 skips it. KIMI_FAULTS_DEFAULT_SUITE_LOG=<file>
 * scans that file instead of running the suite again: `.ci/run` saves the
 * output of the `npm test` it has just run (and failed on) there, so CI runs
 * the default suite once per Node version, not once more for the scan.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { repoRoot } from "../support/tmp.js"
import { findSecrets, record } from "./support.js"

const skip = process.env["KIMI_FAULTS_SKIP_DEFAULT_SUITE"] === "1"
const savedLog = process.env["KIMI_FAULTS_DEFAULT_SUITE_LOG"]

describe.runIf(savedLog !== undefined && !skip)("secret scan of a saved run", () => {
  it("the default test suite's saved output holds no token value", () => {
    const output = fs.readFileSync(savedLog!, "utf8")
    expect(output.length, `the saved output ${savedLog} is empty`).toBeGreaterThan(0)
    record("default-suite", output)
    const hits = findSecrets(output)
    console.log(`fault secret scan: the saved default-suite run (${(output.length / 1024).toFixed(0)} KiB of output): ${hits.length} token values`)
    expect(hits.length, "token values in the default suite's output (see the scan report)").toBe(0)
  })
})

describe.runIf(savedLog === undefined)("secret scan", () => {
  it.skipIf(skip)("the whole default test suite prints no token value", async () => {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env["KIMI_FAULTS_LOG_DIR"]
    const started = Date.now()
    const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(repoRoot, "node_modules", "vitest", "vitest.mjs"), "run", "--reporter=verbose"], {
        cwd: repoRoot,
        env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c))
      child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c))
      const timer = setTimeout(() => child.kill("SIGKILL"), 420_000)
      child.on("close", (c) => {
        clearTimeout(timer)
        resolve({ code: c, output: out })
      })
    })
    record("default-suite", output)
    const hits = findSecrets(output)
    console.log(
      `fault secret scan: default suite (exit ${code}, ${((Date.now() - started) / 1000).toFixed(0)} s, ${(output.length / 1024).toFixed(0)} KiB of output): ${hits.length} token values`
    )
    if (code !== 0 && hits.length === 0) {
      // This run of the default suite exists for its output; say which test failed (only names, no values)
      // so a flake under the fault suite's load can be told apart from a real break.
      const failed = output.split("\n").filter((l) => /×|FAIL/.test(l)).slice(0, 20)
      console.log(`fault secret scan: the default suite failed here:\n${failed.join("\n")}`)
    }
    expect(hits.length, "token values in the default suite's output (see the scan report)").toBe(0)
  }, 480_000)
})
