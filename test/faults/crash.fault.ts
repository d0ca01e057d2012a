/**
 * SIGKILL during token writes: a writer process saves two token sets
 * alternately as fast as it can (test/fixtures/store-writer.mjs, the real
 * TokenStore) and is killed with SIGKILL at a random moment, at least 200
 * times. After each kill the file must parse and hold one whole set: counted
 * as unparsable files and lost logins, both must be 0.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { describe, expect, it } from "vitest"
import { decodeTokenFile } from "../../src/tokens/TokenSet.js"
import { compiledLibrary, repoRoot } from "../support/tmp.js"
import { record } from "./support.js"

const ITERATIONS = Math.max(200, Number(process.env["KIMI_AUTH_CRASH_ITERATIONS"] ?? 200))
const LANES = 4
const writer = path.join(repoRoot, "test", "fixtures", "store-writer.mjs")

/** Spawns the writer, waits for its first save, lets it run `delay` ms, kills it. */
const killOnce = (lib: string, dir: string, delay: number) =>
  new Promise<{ signal: NodeJS.Signals | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [writer, lib, dir], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const guard = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`writer never became ready:\n${output}`))
    }, 30_000)
    child.stderr.setEncoding("utf8").on("data", (c: string) => (output += c))
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      output += c
      if (output.includes("ready\n")) setTimeout(() => child.kill("SIGKILL"), delay)
    })
    child.on("close", (_code, signal) => {
      clearTimeout(guard)
      resolve({ signal, output })
    })
  })

describe("SIGKILL during token writes", () => {
  it(`${ITERATIONS} kills: 0 unparsable files, 0 lost logins`, async () => {
    const lib = compiledLibrary()
    const base = fs.mkdtempSync(path.join(os.tmpdir(), "kimi-faults-crash-"))
    const stats = { kills: 0, unparsable: 0, lost: 0, mixed: 0, corruptAside: 0, seen: new Set<string>() }
    try {
      const lane = async (n: number) => {
        const dir = path.join(base, `lane-${n}`)
        for (let i = n; i < ITERATIONS; i += LANES) {
          // Kill anywhere from right after the first save to a few dozen saves later.
          const { signal, output } = await killOnce(lib, dir, Math.floor(Math.random() * 40))
          record("crash-writers", output.replace("ready\n", ""))
          expect(signal, output).toBe("SIGKILL")
          stats.kills++
          const file = path.join(dir, "oauth.json")
          if (!fs.existsSync(file)) {
            stats.lost++
            continue
          }
          const decoded = await Effect.runPromise(Effect.result(decodeTokenFile(fs.readFileSync(file, "utf8"))))
          if (decoded._tag === "Failure") {
            stats.unparsable++
            continue
          }
          const t = decoded.success.tokens
          const name = t.expiresAt === 1_700_000_000 ? "old" : t.expiresAt === 1_800_000_000 ? "new" : "?"
          const a = Redacted.value(t.accessToken)
          const r = Redacted.value(t.refreshToken)
          if (name === "?" || !a.startsWith(`at-${name}-`) || !r.startsWith(`rt-${name}-`)) stats.mixed++
          else stats.seen.add(name)
          if (fs.readdirSync(dir).some((f) => f.includes("corrupt"))) stats.corruptAside++
        }
      }
      await Promise.all(Array.from({ length: LANES }, (_, n) => lane(n)))
    } finally {
      fs.rmSync(base, { recursive: true, force: true })
    }
    const summary = `kills ${stats.kills}, unparsable ${stats.unparsable}, lost logins ${stats.lost}, mixed sets ${stats.mixed}, ` +
      `corrupt files ${stats.corruptAside}, sets seen ${[...stats.seen].sort().join("+")}`
    console.log(`fault crash: ${summary}`)
    expect(stats.kills).toBeGreaterThanOrEqual(200)
    expect(stats.unparsable, summary).toBe(0)
    expect(stats.lost, summary).toBe(0)
    expect(stats.mixed, summary).toBe(0)
    expect(stats.corruptAside, summary).toBe(0)
    // The kills land while the writer alternates, not only after its first save.
    expect(stats.seen.size, summary).toBe(2)
  })
})
