/**
 * The decisions of `src/lock/FileLock.ts`, each tested directly with tables:
 * whose lock it is, whether it is stale, whether a breaker may take it over,
 * how long a waiter backs off, whether the heartbeat beats, what the lock
 * holds, and what the user reads when a wait gives up.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import {
  backoffMillis,
  cannotRemoveNote,
  comparePidScope,
  INITIAL_PID_NAMESPACE,
  isFolder,
  MAX_TRIES_AT_ONCE,
  notAFile,
  type PidScope,
  scopedHostname,
  triesAtOnce,
  type HolderProbe,
  type HolderState,
  heartbeatOf,
  heartbeatStep,
  holdsToken,
  inProcessTimeoutMessage,
  judgeHolder,
  judgeStaleness,
  linkFallsBackToCreate,
  type LockInfo,
  lockFileContent,
  lockIoMessage,
  type LockSnapshot,
  lockTimeoutMessage,
  lockTimings,
  mayTakeOver,
  newLockInfo,
  sameLock,
  toSnapshot,
  type WatchedBeat
} from "../../src/lock/FileLockDecisions.js"

const host = "box"
const info: LockInfo = { pid: 4242, hostname: host, acquiredAt: "2026-12-02T18:00:00.000Z", token: "t1", startTime: "linux:100" }

/** Where the waiter stands, as in the tables before PID namespaces were recorded: neither side knows one. */
const at = (platform: NodeJS.Platform, hostname = host) => ({ hostname, platform, pidNamespace: undefined, bootId: undefined })
const judge = (lock: LockInfo | undefined, hostname: string, platform: NodeJS.Platform, p: HolderProbe): HolderState =>
  Effect.runSync(judgeHolder(lock, at(platform, hostname), p))

/** A host whose answers are given, counting how often it was asked. */
const probe = (alive: boolean, startTime: string | undefined) => {
  const asked = { alive: 0, startTime: 0 }
  const p: HolderProbe = {
    isAlive: () => (asked.alive++, alive),
    startTime: () => Effect.sync(() => (asked.startTime++, startTime))
  }
  return { p, asked }
}

describe("judgeHolder: whose lock is it", () => {
  const rows: ReadonlyArray<{
    readonly name: string
    readonly info: LockInfo | undefined
    readonly platform: NodeJS.Platform
    readonly alive: boolean
    readonly startTime: string | undefined
    readonly expected: HolderState
  }> = [
    { name: "no readable info (garbage, a FIFO, a folder)", info: undefined, platform: "linux", alive: true, startTime: undefined, expected: "unknown" },
    { name: "a holder on another host", info: { ...info, hostname: "other" }, platform: "linux", alive: true, startTime: "linux:100", expected: "unknown" },
    { name: "this host, pid free", info, platform: "linux", alive: false, startTime: undefined, expected: "gone" },
    { name: "this host, same start time", info, platform: "linux", alive: true, startTime: "linux:100", expected: "alive" },
    { name: "this host, pid reused (other start time)", info, platform: "linux", alive: true, startTime: "linux:999", expected: "gone" },
    { name: "this host, start time unreadable", info, platform: "linux", alive: true, startTime: undefined, expected: "alive" },
    { name: "an older lock without start time", info: { ...info, startTime: undefined }, platform: "darwin", alive: true, startTime: "ps:x", expected: "alive" },
    { name: "Windows without creation time (Wine)", info: { ...info, startTime: "win:1" }, platform: "win32", alive: true, startTime: undefined, expected: "unknown" },
    { name: "Windows, an older lock without start time", info: { ...info, startTime: undefined }, platform: "win32", alive: true, startTime: "win:1", expected: "unknown" },
    { name: "Windows, same creation time", info: { ...info, startTime: "win:1" }, platform: "win32", alive: true, startTime: "win:1", expected: "alive" },
    { name: "Windows, pid reused", info: { ...info, startTime: "win:1" }, platform: "win32", alive: true, startTime: "win:2", expected: "gone" },
    { name: "Windows, pid free", info: { ...info, startTime: "win:1" }, platform: "win32", alive: false, startTime: undefined, expected: "gone" }
  ]
  for (const row of rows) {
    it(`${row.name}: ${row.expected}`, () => {
      assert.strictEqual(judge(row.info, host, row.platform, probe(row.alive, row.startTime).p), row.expected)
    })
  }

  it("asks the host only what the answer depends on (each question spawns a tool on Windows)", () => {
    const remote = probe(true, "linux:100")
    judge({ ...info, hostname: "other" }, host, "linux", remote.p)
    assert.deepStrictEqual(remote.asked, { alive: 0, startTime: 0 })
    const free = probe(false, "linux:100")
    judge(info, host, "linux", free.p)
    assert.deepStrictEqual(free.asked, { alive: 1, startTime: 0 })
    const old = probe(true, "linux:100")
    judge({ ...info, startTime: undefined }, host, "linux", old.p)
    assert.deepStrictEqual(old.asked, { alive: 1, startTime: 0 })
  })
})

describe("judgeStaleness: is this lock stale", () => {
  const staleMillis = 10_000
  const seen: WatchedBeat = { beat: "b1", since: 1_000 }
  const rows: ReadonlyArray<{
    readonly name: string
    readonly state: HolderState
    readonly beat: string
    readonly seen: WatchedBeat | undefined
    readonly now: number
    readonly reason: string | undefined
    readonly watch: WatchedBeat | undefined
  }> = [
    { name: "a gone holder: stale at once", state: "gone", beat: "b1", seen: undefined, now: 0, reason: "its holder, process 4242, is gone", watch: undefined },
    { name: "a gone holder keeps what was seen", state: "gone", beat: "b1", seen, now: 5_000, reason: "its holder, process 4242, is gone", watch: seen },
    { name: "a live holder: never stale, its beat forgotten", state: "alive", beat: "b1", seen: { beat: "b1", since: -1e9 }, now: 1e9, reason: undefined, watch: undefined },
    { name: "unknown, first sight: watched from now", state: "unknown", beat: "b1", seen: undefined, now: 7_000, reason: undefined, watch: { beat: "b1", since: 7_000 } },
    { name: "unknown, beat changed: watched again from now", state: "unknown", beat: "b2", seen, now: 50_000, reason: undefined, watch: { beat: "b2", since: 50_000 } },
    { name: "unknown, same beat, not yet staleAfter", state: "unknown", beat: "b1", seen, now: 1_000 + staleMillis, reason: undefined, watch: seen },
    { name: "unknown, same beat past staleAfter: stale", state: "unknown", beat: "b1", seen, now: 1_001 + staleMillis, reason: "its heartbeat has not changed for 10.0 s", watch: seen },
    { name: "unknown, same beat for whole seconds", state: "unknown", beat: "b1", seen, now: 13_000, reason: "its heartbeat has not changed for 12 s", watch: seen }
  ]
  for (const row of rows) {
    it(row.name, () => {
      const verdict = judgeStaleness({ state: row.state, pid: 4242, beat: row.beat, seen: row.seen, now: row.now, staleMillis })
      assert.deepStrictEqual(verdict, { reason: row.reason, watch: row.watch })
    })
  }

  it("the beat is a file's identity and mtime: a touch or a rewrite is a new beat", () => {
    const s = { identity: "7:{}", mtimeMillis: 1 }
    assert.strictEqual(heartbeatOf(s), "7:{}@1")
    assert.notStrictEqual(heartbeatOf({ ...s, mtimeMillis: 2 }), heartbeatOf(s))
    assert.notStrictEqual(heartbeatOf({ ...s, identity: "8:{}" }), heartbeatOf(s))
  })
})

const snap = (identity: string, lock: LockInfo | undefined): LockSnapshot => ({ identity, mtimeMillis: 0, info: lock })

describe("may we break it, and is it ours", () => {
  const seen = snap("7:a", info)
  const rows: ReadonlyArray<readonly [string, LockSnapshot | undefined, boolean]> = [
    ["still the very file judged stale", snap("7:a", info), true],
    ["gone meanwhile (another waiter broke it)", undefined, false],
    ["a new lock in its place (other inode)", snap("8:a", info), false],
    ["rewritten in place (other content)", snap("7:b", { ...info, token: "t2" }), false]
  ]
  for (const [name, again, expected] of rows) {
    it(`mayTakeOver: ${name}: ${expected}`, () => {
      assert.strictEqual(mayTakeOver(seen, again), expected)
      if (again !== undefined) assert.strictEqual(sameLock(seen)(again), expected)
    })
  }

  it("holdsToken: only the acquisition that wrote the token", () => {
    assert.isTrue(holdsToken("t1")(snap("x", info)))
    assert.isFalse(holdsToken("t2")(snap("x", info)))
    assert.isFalse(holdsToken("t1")(snap("x", undefined)))
  })
})

describe("how long to back off", () => {
  const rows: ReadonlyArray<readonly [attempt: number, jitter: number, millis: number]> = [
    [0, 1, 10],
    [1, 1, 15],
    [2, 1, 23],
    [8, 1, 250], // 10 * 1.5^8 = 256: capped
    [50, 1, 250],
    [0, 0.5, 5],
    [0, 1.5, 15],
    [50, 0.5, 125],
    [50, 1.5, 375]
  ]
  for (const [attempt, jitter, millis] of rows) {
    it(`attempt ${attempt}, jitter ${jitter}: ${millis} ms`, () => {
      assert.strictEqual(backoffMillis(attempt, jitter), millis)
    })
  }
})

describe("timings and the heartbeat", () => {
  const rows: ReadonlyArray<readonly [timeout: string, staleAfter: string, timeoutMillis: number, staleMillis: number, heartbeatMillis: number]> = [
    ["30 seconds", "10 seconds", 30_000, 10_000, 3_333],
    ["1 second", "300 millis", 1_000, 300, 100],
    ["1 second", "0 millis", 1_000, 1, 1],
    ["1 second", "2 millis", 1_000, 2, 1]
  ]
  for (const [timeout, staleAfter, timeoutMillis, staleMillis, heartbeatMillis] of rows) {
    it(`timeout ${timeout}, staleAfter ${staleAfter}: beat every ${heartbeatMillis} ms`, () => {
      assert.deepStrictEqual(
        lockTimings({ timeout: timeout as `${number} seconds`, staleAfter: staleAfter as `${number} millis` }),
        { timeoutMillis, staleMillis, heartbeatMillis }
      )
    })
  }

  it("heartbeatStep: beats while the lock holds our token, stops when it vanished or changed hands", () => {
    assert.strictEqual(heartbeatStep(snap("x", info), "t1"), "beat")
    assert.strictEqual(heartbeatStep(snap("x", { ...info, token: "t2" }), "t1"), "stop")
    assert.strictEqual(heartbeatStep(snap("x", undefined), "t1"), "stop")
    assert.strictEqual(heartbeatStep(undefined, "t1"), "stop")
  })
})

describe("what the lock holds", () => {
  it("newLockInfo: pid, host, ISO time, token, and the start time only when known", () => {
    const at = new Date("2026-12-02T18:00:00.000Z")
    assert.deepStrictEqual(newLockInfo({ pid: 1, hostname: host, acquiredAt: at, token: "t", startTime: "linux:5" }), {
      pid: 1,
      hostname: host,
      acquiredAt: "2026-12-02T18:00:00.000Z",
      token: "t",
      startTime: "linux:5"
    })
    const without = newLockInfo({ pid: 1, hostname: host, acquiredAt: at, token: "t", startTime: undefined })
    assert.isFalse("startTime" in without)
  })

  it("lockFileContent and toSnapshot round-trip; anything else holds no info", () => {
    const raw = lockFileContent(info)
    assert.isTrue(raw.endsWith("}\n"))
    assert.deepStrictEqual(toSnapshot({ identity: `1:${raw}`, mtimeMillis: 5, raw }).info, info)
    const { startTime: _, ...old } = info
    assert.deepStrictEqual(toSnapshot({ identity: "1", mtimeMillis: 5, raw: JSON.stringify(old) }).info, old)
    for (const garbage of ["", "{", "<a folder>", "<not a regular file: mode 10644>", `{"pid":"1"}`, "null"]) {
      assert.isUndefined(toSnapshot({ identity: "1", mtimeMillis: 5, raw: garbage }).info, garbage)
    }
  })

  it("linkFallsBackToCreate: only when the filesystem has no hard links, not for a held lock or a missing folder", () => {
    const rows: ReadonlyArray<readonly [Parameters<typeof linkFallsBackToCreate>[0], boolean]> = [
      ["AlreadyExists", false],
      ["NotFound", false],
      ["BadResource", true],
      ["PermissionDenied", true],
      ["Unknown", true]
    ]
    for (const [reason, expected] of rows) assert.strictEqual(linkFallsBackToCreate(reason), expected, reason)
  })
})

describe("what the user reads", () => {
  type Input = Parameters<typeof lockTimeoutMessage>[0]
  const base: Input = {
    lockPath: "/home/u/.kimi/oauth.json.lock",
    timeoutMillis: 30_000,
    holder: info,
    holderAlive: false,
    cannotRemove: undefined,
    platform: "linux"
  }
  const who = "held by process 4242 on box since 2026-12-02T18:00:00.000Z"
  const rows: ReadonlyArray<readonly [string, Partial<Input>, string]> = [
    [
      "a lock nobody may be using: delete it",
      {},
      `Gave up after 30 s waiting for the lock /home/u/.kimi/oauth.json.lock, ${who}. If no kimi-auth or OpenCode ` +
      `process is running, delete /home/u/.kimi/oauth.json.lock and try again.`
    ],
    [
      "an unreadable holder",
      { holder: undefined, timeoutMillis: 1_500 },
      `Gave up after 1.5 s waiting for the lock /home/u/.kimi/oauth.json.lock, held by another process. If no ` +
      `kimi-auth or OpenCode process is running, delete /home/u/.kimi/oauth.json.lock and try again.`
    ],
    [
      "a live holder on POSIX: resume or end it, never broken",
      { holderAlive: true },
      `Gave up after 30 s waiting for the lock /home/u/.kimi/oauth.json.lock, ${who}, which is still running (a ` +
      "live holder is never interrupted; if it is stopped, resume it with `kill -CONT 4242` or end it). Nothing " +
      "was changed; try again."
    ],
    [
      "a live holder on Windows: Task Manager",
      { holderAlive: true, platform: "win32" },
      `Gave up after 30 s waiting for the lock /home/u/.kimi/oauth.json.lock, ${who}, which is still running (a ` +
      `live holder is never interrupted; if it hangs, end it in Task Manager). Nothing was changed; try again.`
    ],
    [
      "a stale lock it may not delete: who must delete it (wins over a live holder)",
      { holderAlive: true, cannotRemove: cannotRemoveNote("its holder, process 4242, is gone", "permission denied") },
      `Gave up after 30 s waiting for the lock /home/u/.kimi/oauth.json.lock, ${who}: it is stale (its holder, ` +
      `process 4242, is gone) but cannot be removed (permission denied). Delete it as its owner (or root), or use ` +
      `a storage folder of your own.`
    ]
  ]
  for (const [name, change, expected] of rows) {
    it(`lockTimeoutMessage: ${name}`, () => {
      assert.strictEqual(lockTimeoutMessage({ ...base, ...change }), expected)
    })
  }

  it("inProcessTimeoutMessage: another operation of this process held it", () => {
    assert.strictEqual(
      inProcessTimeoutMessage("memory", 2_000),
      "Gave up after 2 s waiting for the lock memory: another operation in this process held it all that time. " +
        "Try again; if it keeps happening, restart the process."
    )
  })

  it("lockIoMessage: what failed, why, and what to check", () => {
    assert.strictEqual(
      lockIoMessage("create the lock file /d/x.lock", "permission denied", "/d"),
      "Cannot create the lock file /d/x.lock (permission denied). Check that /d exists, is a folder you own, is " +
        "writable by you, and that the disk is not full."
    )
  })
})

describe("issue 22: a holder whose pid means something else from where the waiter stands", () => {
  const ns = "pid:[4026532175]"
  const boot = "95126bed-9f1b-443a-aef5-8d2756a66f84"
  const here: PidScope = { hostname: host, platform: "linux", pidNamespace: INITIAL_PID_NAMESPACE, bootId: boot }
  const mine: LockInfo = { ...info, platform: "linux", pidNamespace: INITIAL_PID_NAMESPACE, bootId: boot }

  describe("comparePidScope", () => {
    const rows: ReadonlyArray<readonly [string, LockInfo, PidScope, "same" | "foreign" | "partial"]> = [
      ["same host, namespace and boot", mine, here, "same"],
      ["another PID namespace, same host name (a container, bwrap, flatpak, unshare -p)", { ...mine, pidNamespace: ns }, here, "foreign"],
      ["another boot (a reboot, or two machines sharing a host name and a home folder)", { ...mine, bootId: "other" }, here, "foreign"],
      ["another platform with the same host name (Wine on Linux)", { ...mine, platform: "win32" }, here, "foreign"],
      ["another host", { ...mine, hostname: "other" }, here, "foreign"],
      ["a lock of an older release (no namespace, no boot) seen from Linux", info, here, "partial"],
      ["a waiter that cannot read its own namespace", mine, { ...here, pidNamespace: undefined }, "partial"],
      ["neither side knows namespaces (macOS, Windows)", info, { ...here, platform: "darwin", pidNamespace: undefined, bootId: undefined }, "same"]
    ]
    for (const [name, lock, where, expected] of rows) {
      it(`${name}: ${expected}`, () => assert.strictEqual(comparePidScope(lock, where), expected))
    }
  })

  describe("judgeHolder across scopes", () => {
    const rows: ReadonlyArray<{
      readonly name: string
      readonly info: LockInfo
      readonly alive: boolean
      readonly startTime: string | undefined
      readonly expected: HolderState
    }> = [
      // Before: "gone" (pid 1 here is another process; a free pid here is a live holder there): a live lock broken.
      { name: "another namespace, its pid is another process here", info: { ...mine, pid: 1, pidNamespace: ns }, alive: true, startTime: "linux:5", expected: "unknown" },
      { name: "another namespace, its pid is free here", info: { ...mine, pidNamespace: ns }, alive: false, startTime: undefined, expected: "unknown" },
      { name: "another boot, its pid is free", info: { ...mine, bootId: "other" }, alive: false, startTime: undefined, expected: "unknown" },
      { name: "same namespace, pid free", info: mine, alive: false, startTime: undefined, expected: "gone" },
      { name: "same namespace, pid reused", info: mine, alive: true, startTime: "linux:999", expected: "gone" },
      { name: "same namespace, same start time", info: mine, alive: true, startTime: "linux:100", expected: "alive" },
      { name: "an older release's lock, pid and start time match: alive", info, alive: true, startTime: "linux:100", expected: "alive" },
      { name: "an older release's lock, pid free: may be another namespace's", info, alive: false, startTime: undefined, expected: "unknown" },
      { name: "an older release's lock, pid reused or another namespace's", info, alive: true, startTime: "linux:999", expected: "unknown" }
    ]
    for (const row of rows) {
      it(`${row.name}: ${row.expected}`, () => {
        assert.strictEqual(Effect.runSync(judgeHolder(row.info, here, probe(row.alive, row.startTime).p)), row.expected)
      })
    }

    it("another scope asks the host nothing", () => {
      const p = probe(true, "linux:100")
      Effect.runSync(judgeHolder({ ...mine, pidNamespace: ns }, here, p.p))
      assert.deepStrictEqual(p.asked, { alive: 0, startTime: 0 })
    })
  })

  describe("scopedHostname: what older releases compare", () => {
    const rows: ReadonlyArray<readonly [string, string | undefined, string]> = [
      ["linux", INITIAL_PID_NAMESPACE, "box"],
      ["linux", ns, "box (pid namespace 4026532175)"],
      ["linux", undefined, "box (pid namespace unknown)"],
      ["linux", "odd", "box (pid namespace odd)"],
      ["darwin", undefined, "box"],
      ["win32", undefined, "box"]
    ]
    for (const [platform, pidNamespace, expected] of rows) {
      it(`${platform}, ${pidNamespace}: ${expected}`, () => assert.strictEqual(scopedHostname("box", platform, pidNamespace), expected))
    }
  })

  it("the previous release reads a new lock: same fields, the new ones ignored, so a sandboxed holder's lock is another host's to it", () => {
    // The previous release's decoder, as it shipped.
    const previous = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Struct({
      pid: Schema.Number,
      hostname: Schema.String,
      acquiredAt: Schema.String,
      token: Schema.String,
      startTime: Schema.optional(Schema.String)
    })))
    const sandboxed = newLockInfo({
      pid: 1,
      hostname: scopedHostname("box", "linux", ns),
      acquiredAt: new Date("2026-12-02T18:00:00.000Z"),
      token: "t",
      startTime: "linux:5",
      platform: "linux",
      pidNamespace: ns,
      bootId: boot
    })
    const old = Option.getOrThrow(previous(lockFileContent(sandboxed)))
    assert.deepStrictEqual(old, { pid: 1, hostname: "box (pid namespace 4026532175)", acquiredAt: "2026-12-02T18:00:00.000Z", token: "t", startTime: "linux:5" })
    // The previous release checks the pid only when the host name is its own (`box`): it watches the heartbeat instead.
    assert.notStrictEqual(old.hostname, "box")
    assert.deepStrictEqual(toSnapshot({ identity: "1", mtimeMillis: 0, raw: lockFileContent(sandboxed) }).info, sandboxed)
  })
})

describe("odd things at the lock path, and bounded tries", () => {
  it("a link, a folder, a FIFO or a device holds no lock info", () => {
    for (const raw of [notAFile("symbolic link", 0o120777), notAFile("folder", 0o40700), notAFile("other", 0o10644)]) {
      assert.isUndefined(toSnapshot({ identity: `1:${raw}`, mtimeMillis: 0, raw }).info, raw)
    }
    assert.strictEqual(notAFile("other", 0o10644), "<not a regular file: mode 10644>")
    assert.isTrue(isFolder({ identity: `7:${notAFile("folder", 0o40700)}` }))
    assert.isFalse(isFolder({ identity: `7:${notAFile("symbolic link", 0o120777)}` }))
    assert.isFalse(isFolder({ identity: "7:<a folder>x" }))
  })

  it("triesAtOnce: a waiter retries without sleeping at most a few times in a row", () => {
    const rows: ReadonlyArray<readonly [number, boolean]> = [[0, true], [MAX_TRIES_AT_ONCE - 1, true], [MAX_TRIES_AT_ONCE, false], [1_000, false]]
    for (const [n, expected] of rows) assert.strictEqual(triesAtOnce(n), expected, String(n))
  })
})
