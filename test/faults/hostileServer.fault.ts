/**
 * The hostile-server lane: the built promise facade, in a child process of
 * its own (its peak memory measured by a preload), asks for a token from an
 * OAuth server that misbehaves on purpose, several times per behaviour:
 *
 * - a 2 GB `Content-Length` (Node used to abort: exit 133, nothing catchable);
 * - an endless body at full speed (a process used to grow past 12 GB);
 * - an endless gzip body of zeros (a few KiB on the wire per 16 MiB unpacked);
 * - 1 MiB of response headers;
 * - a body dripped one byte per 100 ms, past the 2 s deadline;
 * - a 302 to another origin (used to be followed, and its body stored);
 * - an access token with CR/LF next to a rotated refresh token;
 * - `expires_in: 1e308`;
 * - an error that echoes the sent refresh token raw, URL-encoded, base64,
 *   base64url and JSON-escaped.
 *
 * Counted: outcomes, peak RSS, time, logins lost (the file's refresh token is
 * neither the one the server last issued nor the one sent), secrets reachable
 * from the error (inspect at any depth, JSON, cause). Every child output goes
 * to the secret scan of scripts/test-faults.mjs.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { makeTemp, repoRoot, rmTemp } from "../support/cli.js"
import { type Hostile, startHostileServer } from "../support/hostileServer.js"
import { encodingsFound } from "../support/secretReach.js"
import { seedLogin } from "../support/tokens.js"
import { canary, record } from "./support.js"

const RUNS = Number(process.env["KIMI_HOSTILE_RUNS"] ?? 3)
const RSS_LIMIT_KIB = 200 * 1024
const summary: Array<string> = []

interface Outcome {
  readonly ok: boolean
  readonly code?: string
  readonly message?: string
  readonly reachable?: string
  readonly millis: number
  readonly exitCode: number | null
  readonly signal: string | null
  readonly maxRssKiB: number
}

const runFacade = (oauthHost: string, storageDir: string): Promise<Outcome> =>
  new Promise((resolve, reject) => {
    const report = path.join(storageDir, "..", `rss-${Math.random().toString(36).slice(2)}`)
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, "test", "fixtures", "facade-token.mjs"), path.join(repoRoot, "dist"), oauthHost, storageDir],
      {
        env: {
          ...process.env,
          KIMI_RSS_REPORT: report,
          NODE_OPTIONS: `--require ${path.join(repoRoot, "test", "fixtures", "report-rss.cjs")}`
        },
        stdio: ["ignore", "pipe", "pipe"]
      }
    )
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c))
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
    child.on("error", reject)
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer)
      record("hostile-server", stdout + stderr)
      const maxRssKiB = fs.existsSync(report) ? Number(fs.readFileSync(report, "utf8")) : Number.NaN
      let parsed: Omit<Outcome, "exitCode" | "signal" | "maxRssKiB"> = { ok: false, code: "NO_OUTPUT", millis: 0 }
      try {
        parsed = JSON.parse(stdout.trim().split("\n").pop() ?? "")
      } catch {
        parsed = { ok: false, code: `CRASH (${exitCode ?? signal})`, millis: 0 }
      }
      resolve({ ...parsed, exitCode, signal, maxRssKiB })
    })
  })

interface Lane {
  readonly name: string
  readonly mode: (sentRefresh: string) => Hostile
  /** What the facade must answer. */
  readonly expect: (o: Outcome) => void
  /** The refresh token the file must hold afterwards (the login kept), given the one sent. */
  readonly keeps?: (sent: string) => string
  /** Whether the access token on disk was expired (default) or still valid but due. */
  readonly stillValid?: boolean
  readonly maxMillis: number
}

const rotated = canary("hostilerotated")

const lanes: ReadonlyArray<Lane> = [
  {
    name: "2 GB Content-Length",
    mode: () => ({ kind: "huge-length" }),
    expect: (o) => {
      expect(o.code).toBe("INVALID_RESPONSE")
      expect(o.message).toMatch(/too large/)
    },
    maxMillis: 15_000
  },
  {
    name: "endless body",
    mode: () => ({ kind: "endless" }),
    expect: (o) => {
      expect(o.code).toBe("INVALID_RESPONSE")
      expect(o.message).toMatch(/too large/)
    },
    maxMillis: 15_000
  },
  {
    name: "gzip bomb (endless compressed zeros)",
    mode: () => ({ kind: "gzip-bomb" }),
    expect: (o) => {
      expect(o.code).toBe("INVALID_RESPONSE")
      expect(o.message).toMatch(/too large/)
    },
    maxMillis: 15_000
  },
  {
    name: "1 MiB of response headers",
    mode: () => ({ kind: "huge-headers" }),
    expect: (o) => expect(o.code).toBe("NETWORK_ERROR"),
    maxMillis: 15_000
  },
  {
    name: "slow drip past the 2 s deadline",
    mode: () => ({ kind: "slow-drip", everyMillis: 100 }),
    expect: (o) => {
      expect(o.code).toBe("NETWORK_ERROR")
      expect(o.message).toMatch(/did not answer within 2 s/)
    },
    maxMillis: 15_000
  },
  {
    name: "302 to another origin",
    mode: () => ({ kind: "redirect", location: "http://127.0.0.1:9/api/oauth/token" }),
    expect: (o) => {
      expect(o.code).toBe("INVALID_RESPONSE")
      expect(o.message).toMatch(/redirect to http:\/\/127\.0\.0\.1:9, which was refused/)
    },
    maxMillis: 15_000
  },
  {
    name: "CR/LF access token beside a rotated refresh token (expired token)",
    mode: () => ({ kind: "json", body: { access_token: "at-x\r\nX-Injected: yes", refresh_token: rotated, expires_in: 900 } }),
    expect: (o) => {
      expect(o.code).toBe("INVALID_RESPONSE")
      expect(o.reachable ?? "").not.toMatch(/X-Injected/)
    },
    keeps: () => rotated,
    maxMillis: 15_000
  },
  {
    name: "CR/LF access token beside a rotated refresh token (still-valid token)",
    mode: () => ({ kind: "json", body: { access_token: "at-x\r\nX-Injected: yes", refresh_token: rotated, expires_in: 900 } }),
    expect: (o) => expect(o.ok).toBe(true),
    keeps: () => rotated,
    stillValid: true,
    maxMillis: 15_000
  },
  {
    name: "expires_in 1e308",
    mode: () => ({ kind: "json", body: { access_token: "at-new", refresh_token: rotated, expires_in: 1e308 } }),
    expect: (o) => expect(o.ok).toBe(true),
    keeps: () => rotated,
    maxMillis: 15_000
  },
  {
    name: "error echoing the sent refresh token in 5 encodings",
    mode: () => ({ kind: "echo" }),
    expect: (o) => expect(o.code).toBe("OAUTH_ERROR"),
    keeps: (sent) => sent,
    maxMillis: 15_000
  }
]

describe("hostile OAuth server: the facade in a child process", () => {
  afterAll(() => {
    console.log(`fault hostile-server: ${RUNS} runs per behaviour, rss limit ${RSS_LIMIT_KIB / 1024} MiB\n${summary.join("\n")}`)
  })

  for (const lane of lanes) {
    it(lane.name, async () => {
      const server = await startHostileServer({ kind: "endless" })
      const home = makeTemp("kimi-hostile-")
      const outcomes: Record<string, number> = {}
      let peakKiB = 0
      let slowest = 0
      let lost = 0
      let leaks = 0
      try {
        for (let i = 0; i < RUNS; i++) {
          const sent = canary("hostilesent")
          const storage = path.join(home, `run${i}`)
          const expiresAt = Math.floor(Date.now() / 1000) + (lane.stillValid ? 100 : -60)
          seedLogin(path.join(storage, "oauth.json"), { refresh: sent, expiresAt, extra: { scope: "" } })
          server.setMode(lane.mode(sent))
          const o = await runFacade(server.url, storage)
          const key = o.ok ? "ok" : o.code ?? "?"
          outcomes[key] = (outcomes[key] ?? 0) + 1
          peakKiB = Math.max(peakKiB, o.maxRssKiB)
          slowest = Math.max(slowest, o.millis)
          const stored = JSON.parse(fs.readFileSync(path.join(storage, "oauth.json"), "utf8")) as { refresh_token: string; expires_in: number }
          const wanted = lane.keeps?.(sent) ?? sent
          if (stored.refresh_token !== wanted) lost++
          const found = [sent, rotated].flatMap((s) => encodingsFound(`${o.message ?? ""}\n${o.reachable ?? ""}`, s))
          if (found.length > 0) leaks++
          expect(o.signal, lane.name).toBeNull()
          expect(o.exitCode, lane.name).toBe(0)
          lane.expect(o)
          expect(o.maxRssKiB).toBeLessThan(RSS_LIMIT_KIB)
          expect(o.millis).toBeLessThan(lane.maxMillis)
          expect(found).toEqual([])
          if (lane.name === "expires_in 1e308") expect(stored.expires_in).toBe(900)
        }
        expect(lost).toBe(0)
      } finally {
        summary.push(
          `  ${lane.name}: ${JSON.stringify(outcomes)}; peak RSS ${(peakKiB / 1024).toFixed(0)} MiB; slowest ${slowest} ms; ` +
            `logins lost ${lost}; errors with a reachable secret ${leaks}; server bytes sent ${server.sentBytes()}, client hang-ups ${server.hangUps()}`
        )
        await server.close()
        rmTemp(home)
      }
    }, 240_000)
  }
})
