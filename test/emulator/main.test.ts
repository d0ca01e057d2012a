/**
 * The runnable entry `dist/emulator/main.js` as a real child process, and its
 * flag parser.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterEach, assert, beforeAll, describe, it } from "vitest"
import { parseEmulatorArgs } from "../../src/emulator/EmulatorArgs.js"
import { authorize, chat, models, poll } from "./http.js"

const root = path.resolve(import.meta.dirname, "../..")
const main = path.join(root, "dist/emulator/main.js")
const run = promisify(execFile)

beforeAll(async () => {
  // Others may have type errors in their files: tsc still emits, so only the output matters.
  await run(process.execPath, [path.join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"], {
    cwd: root
  }).catch(() => undefined)
  assert.isTrue(fs.existsSync(main), "dist/emulator/main.js was built")
}, 120_000)

const children: Array<ChildProcess> = []
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL")
})

/** Spawns the emulator and resolves with its first stdout line and all output so far. */
const spawnEmulator = (args: ReadonlyArray<string>) =>
  new Promise<{ child: ChildProcess; line: string; stdout: () => string }>((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
    children.push(child)
    let out = ""
    let err = ""
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d
      const nl = out.indexOf("\n")
      if (nl >= 0) resolve({ child, line: out.slice(0, nl), stdout: () => out })
    })
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
    child.on("exit", (code) => reject(new Error(`emulator exited (${code}) before printing: ${err}`)))
    setTimeout(() => reject(new Error(`no URL line within 10 s; stderr: ${err}`)), 10_000).unref()
  })

const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode)
    else child.on("exit", (code) => resolve(code))
  })

describe("emulator main.js", () => {
  it("prints the URL line promptly and serves a full auto-approved login", async () => {
    const { child, line, stdout } = await spawnEmulator(["--port", "0", "--auto-approve", "0", "--access-token-ttl", "120"])
    const m = /^Kimi emulator listening on (http:\/\/127\.0\.0\.1:(\d+))$/.exec(line)
    assert.isNotNull(m, line)
    const url = m![1]!
    assert.notStrictEqual(m![2], "0")

    const auth = await authorize(url)
    assert.strictEqual(auth.status, 200)
    const tokens = await poll(url, auth.json.device_code)
    assert.strictEqual(tokens.status, 200, "auto-approved at once")
    assert.strictEqual(tokens.json.expires_in, 120)
    assert.strictEqual((await models(`${url}/coding/v1`, tokens.json.access_token)).status, 200)
    const answer = await chat(`${url}/coding/v1`, tokens.json.access_token, {
      model: "kimi-for-coding",
      messages: [{ role: "user", content: "hi" }]
    })
    assert.include(answer.json.choices[0].message.content, "Hello from the Kimi emulator")

    assert.include(stdout(), `API base:      ${url}/coding/v1`)
    assert.include(stdout(), `${url}/device`)
    assert.notInclude(stdout(), tokens.json.access_token, "secrets never reach stdout")

    child.kill("SIGINT")
    assert.oneOf(await exited(child), [0, 130])
  })

  it("fails with exit code 2 and the usage on a bad flag", async () => {
    const r = await run(process.execPath, [main, "--port", "nope"]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e
    )
    assert.strictEqual(r.code, 2)
    assert.include(r.stderr, "--port needs a non-negative number")
    assert.include(r.stderr, "Usage:")
  })
})

describe("parseEmulatorArgs", () => {
  it("maps flags to options", () => {
    assert.deepStrictEqual(
      parseEmulatorArgs([
        "--port=8123",
        "--host",
        "localhost",
        "--auto-approve",
        "--interval",
        "2",
        "--error-rate",
        "0.5",
        "--seed",
        "7",
        "--fault-paths",
        "/api/oauth/token, /coding/v1"
      ]),
      {
        port: 8123,
        host: "localhost",
        autoApproveAfterMillis: 0,
        interval: 2,
        faults: { serverErrorRate: 0.5, seed: 7, paths: ["/api/oauth/token", "/coding/v1"] }
      }
    )
    assert.deepStrictEqual(parseEmulatorArgs(["--auto-approve", "500"]), { autoApproveAfterMillis: 500 })
    assert.strictEqual(parseEmulatorArgs(["--help"]), "help")
    assert.throws(() => parseEmulatorArgs(["--bogus"]), /unknown flag/)
    assert.throws(() => parseEmulatorArgs(["--latency"]), /needs a value/)
  })
})
