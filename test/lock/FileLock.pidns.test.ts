/**
 * Issue 22: a lock holder in another PID namespace with the same host name (a
 * container, a bubblewrap or flatpak sandbox, `unshare -p`), with real
 * processes: one runs under `unshare -p -f --mount-proc` (root, Linux), the
 * other outside it, over one storage folder.
 *
 * Before: each judged the other's pid from where it stood (pid 1 in the
 * sandbox is another process outside it; a pid outside is free inside) and
 * broke a live lock at once: two refreshes of one refresh token, a replay,
 * and the login revoked. Now neither breaks the other's lock while it beats:
 * one refresh, no replay, never two holders at once.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as FileLock from "../../src/lock/FileLock.js"
import { storageWithLogin } from "../support/tokens.js"
import { startSlowRotatingServer } from "../support/slowRotatingServer.js"
import { compiledLibrary, repoRoot } from "../support/tmp.js"

/**
 * How this machine lets us make a PID namespace with its own /proc: as root, or as a user through a user
 * namespace (`-r`, where unprivileged user namespaces are allowed); `undefined` where neither works.
 */
const unshareFlags = process.platform !== "linux" ? undefined : [["-p", "-f", "--mount-proc"], ["-r", "-p", "-f", "--mount-proc"]]
  .find((flags) => spawnSync("unshare", [...flags, "true"], { stdio: "ignore", timeout: 10_000 }).status === 0)
const canUnshare = unshareFlags !== undefined

/** A storage folder holding a login (`rt-0`) with `secondsLeft` before its access token expires, removed after the test. */
const login = (prefix: string, secondsLeft: number) => {
  const dir = storageWithLogin(prefix, secondsLeft)
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A running child: its output so far, and its end. */
interface Run {
  readonly output: () => string
  readonly done: Promise<number | null>
}

/** Runs `<runtime> script ...args`, in a new PID namespace (with its own /proc) when `sandboxed`. */
const run = (sandboxed: boolean, script: string, args: ReadonlyArray<string>, env: Record<string, string> = {}): Run => {
  const command = sandboxed ? "unshare" : process.execPath
  const argv = sandboxed ? [...unshareFlags!, process.execPath, script, ...args] : [script, ...args]
  const child = spawn(command, argv, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c))
  child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c))
  const guard = setTimeout(() => child.kill("SIGKILL"), 60_000)
  const done = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      clearTimeout(guard)
      resolve(code)
    }))
  return { output: () => out, done }
}

const waitFor = async (predicate: () => boolean, what: string, timeoutMillis = 20_000) => {
  const start = Date.now()
  while (!predicate()) {
    if (Date.now() - start > timeoutMillis) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const lastJson = (r: Run) => JSON.parse(r.output().trim().split("\n").pop() ?? "null") as { ok: boolean; token?: string; code?: string }

describe.skipIf(!canUnshare)("a lock holder in another PID namespace with the same host name (issue 22)", () => {
  let lib = ""
  beforeAll(() => {
    lib = compiledLibrary()
  })

  for (const holderSandboxed of [true, false]) {
    const where = holderSandboxed ? "the holder in the sandbox, the waiter outside" : "the holder outside, the waiter in the sandbox"
    it(`${where}: one refresh, no replay, the lock never broken`, async () => {
      // Rotates on receipt, answers 3 s later, and revokes the family when a spent refresh token comes again.
      const server = await startSlowRotatingServer("rt-0", { answerAfterMs: 3_000 })
      onTestFinished(() => server.close())
      const dir = login("kimi-pidns-", -10)
      const lockPath = path.join(dir, "oauth.json.lock")
      const facade = (sandboxed: boolean) =>
        run(sandboxed, path.join(repoRoot, "test", "fixtures", "slow-refresh.mjs"), [
          path.join(repoRoot, "dist"), server.url, dir, "10 seconds", "30 seconds", "1"
        ])
      const arrived = server.nextArrival()
      const holder = facade(holderSandboxed)
      // The holder's refresh is on the wire (the server answers 3 s later) and its lock is there.
      await arrived
      const held = fs.readFileSync(lockPath, "utf8")
      const waiter = facade(!holderSandboxed)
      await Promise.all([holder.done, waiter.done])
      expect([lastJson(holder), lastJson(waiter)].map((o) => o.token ?? o.code), `${holder.output()}\n${waiter.output()}`)
        .toEqual(["at-1", "at-1"])
      expect(server.stats).toEqual({ refreshes: 1, reuses: 0, revoked: false })
      // The sandboxed process recorded its namespace; the other judged it by its heartbeat.
      const info = JSON.parse(held) as { pidNamespace?: string; hostname: string }
      expect(info.pidNamespace).toMatch(/^pid:\[\d+\]$/)
      if (holderSandboxed) expect(info.hostname).toMatch(/ \(pid namespace \d+\)$/)
      expect(fs.existsSync(lockPath)).toBe(false)
    }, 60_000)
  }

  /** A lock of this process over `dir`, as another process would take it. */
  const lockOf = (dir: string) =>
    FileLock.make({ path: path.join(dir, "oauth.json.lock"), timeout: "20 seconds", staleAfter: "10 seconds" }).pipe(
      Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer))
    )

  it("a sandboxed holder is waited for until it releases, never broken", async () => {
    const dir = login("kimi-pidns-hold-", 900)
    const holder = run(true, path.join(repoRoot, "test", "fixtures", "store-lock.mjs"), [lib, dir, "hold", "1500"])
    await waitFor(() => holder.output().includes("held "), "the sandboxed child holds the lock")
    // The holder writes hold-ended before it lets go: a fair take finds it. (Not its "released" line: the pipe
    // may deliver that after the waiter, woken by the lock file's removal, is already inside.)
    const holdEnded = await Effect.runPromise(Effect.flatMap(lockOf(dir), (lock) =>
      lock.withLock(Effect.sync(() => fs.existsSync(path.join(dir, "hold-ended"))))))
    // Before: taken at once (pid 1 here is another process), while the holder was inside.
    expect(holdEnded, holder.output()).toBe(true)
    expect(await holder.done).toBe(0)
  }, 60_000)

  it("a holder outside is never broken by a waiter in the sandbox (where its pid is free)", async () => {
    const dir = login("kimi-pidns-count-", 900)
    const marker = path.join(dir, "inside")
    let child: Run | undefined
    await Effect.runPromise(Effect.flatMap(lockOf(dir), (lock) =>
      lock.withLock(Effect.gen(function*() {
        // The child's critical section creates the same marker exclusively: "OVERLAP" if we are inside.
        fs.writeFileSync(marker, String(process.pid), { flag: "wx" })
        child = run(true, path.join(repoRoot, "test", "fixtures", "store-lock.mjs"), [lib, dir, "count", "1", "1"])
        yield* Effect.sleep(1500)
        fs.rmSync(marker)
      }))))
    expect(await child!.done, child!.output()).toBe(0)
    expect(child!.output()).not.toContain("OVERLAP")
    expect(Number(fs.readFileSync(path.join(dir, "counter"), "utf8"))).toBe(1)
  }, 60_000)
})
