// A Windows child process for the Wine lane (test/windows/windows.wine.ts), run by node.exe for
// Windows under Wine. It uses the built library (dist/) through its public modules only. Prints one
// JSON line on standard output (a file: Wine's node.exe cannot write to a Unix pipe).
//
// Usage: node.exe win-child.mjs <dist folder> <mode> ...
//   refresh <oauth host> <storage folder>   TokenManager.getAccessToken once, over a fetch built on
//                                           node:http (Wine's fetch cannot connect; node:http can).
//                                           The fetch is this fixture's, given through the public
//                                           FetchHttpClient.Fetch reference: the library is unchanged.
//   save <storage folder> <count> [first]   saves <count> numbered token sets (from <first>, default 1)
//                                           one after another; after each save, loads and checks that the
//                                           file holds the last set that saved successfully ("lost" if not).
//   hold-open <file> <hold ms> <gap ms> <total ms> [stop file]
//                                           opens the token file (prints "opened" the first time), reads it
//                                           whole, keeps it open <hold ms> (or until the stop file exists),
//                                           closes it, waits <gap ms>; again until <total ms> or until the
//                                           stop file exists. Counts torn reads (not a whole token file).
//   load-loop <storage folder> <stop file> [pause ms]
//                                           TokenStore.load again and again (a pause between loads) until the
//                                           stop file exists;
//                                           the access tokens seen, errors, loads without a file.
//   start-time <pid>                        The lock's view of <pid> (ProcessIdentity): its start time, alive or not.
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Effect from "effect/Effect"
import * as FetchHttpClient from "effect/http/FetchHttpClient"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { pathToFileURL } from "node:url"

const [dist, mode, ...rest] = process.argv.slice(2)
const load = (name) => import(pathToFileURL(path.join(dist, name)).href)
const print = (value) => process.stdout.write(JSON.stringify({ pid: process.pid, ...value }) + "\n")
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** A WHATWG fetch over node:http: enough for the token endpoint (form POST, JSON answer). */
const httpFetch = (input, init = {}) =>
  new Promise((resolve, reject) => {
    const request = input instanceof Request ? input : undefined
    const url = new URL(request ? request.url : String(input))
    const headers = new Headers(init.headers ?? request?.headers)
    const body = init.body === undefined || init.body === null
      ? undefined
      : typeof init.body === "string"
      ? Buffer.from(init.body)
      : init.body instanceof URLSearchParams
      ? Buffer.from(init.body.toString())
      : Buffer.from(init.body)
    if (init.body instanceof URLSearchParams && !headers.has("content-type")) {
      headers.set("content-type", "application/x-www-form-urlencoded")
    }
    const req = http.request(url, {
      method: init.method ?? request?.method ?? "GET",
      headers: Object.fromEntries(headers)
    }, (res) => {
      const chunks = []
      res.on("data", (c) => chunks.push(c))
      res.on("end", () => {
        const out = new Headers()
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) v.forEach((x) => out.append(k, x))
          else if (v !== undefined) out.set(k, v)
        }
        const status = res.statusCode ?? 500
        resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: out }))
      })
      res.on("error", reject)
    })
    req.on("error", reject)
    const signal = init.signal ?? request?.signal
    if (signal) {
      if (signal.aborted) req.destroy(signal.reason)
      signal.addEventListener("abort", () => req.destroy(signal.reason), { once: true })
    }
    req.end(body)
  })

const platform = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

const run = async () => {
  if (mode === "refresh") {
    const [oauthHost, storageDir] = rest
    const { KimiAuth } = await load("index.js")
    const { TokenManager } = await load("tokens/TokenManager.js")
    const layer = KimiAuth.layer({ oauthHost, storageDir }).pipe(
      Layer.provideMerge(Layer.mergeAll(FetchHttpClient.layer, platform)),
      Layer.provideMerge(Layer.succeed(FetchHttpClient.Fetch, httpFetch))
    )
    const started = Date.now()
    const token = await Effect.runPromise(
      Effect.gen(function*() {
        const manager = yield* TokenManager
        return Redacted.value(yield* manager.getAccessToken)
      }).pipe(Effect.provide(layer))
    )
    print({ ok: true, token, millis: Date.now() - started })
  } else if (mode === "save") {
    const [storageDir, count, first = "1"] = rest
    const { TokenStore } = await load("storage/TokenStore.js")
    const { TokenSet } = await load("tokens/TokenSet.js")
    const { KimiAuthConfig } = await load("config/KimiAuthConfig.js")
    const { DeviceIdentity } = await load("oauth/DeviceIdentity.js")
    const pad = "x".repeat(2048)
    const set = (i) =>
      new TokenSet({
        accessToken: Redacted.make(`at-save-${i}-${pad}`),
        refreshToken: Redacted.make(`rt-save-${i}-${pad}`),
        tokenType: "Bearer",
        expiresIn: 900,
        scope: "kimi-code",
        expiresAt: 1_800_000_000 + i
      })
    const layer = TokenStore.layerFile.pipe(
      Layer.provideMerge(DeviceIdentity.layerFixed("00000000-0000-4000-8000-0000000000cc")),
      Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
      Layer.provideMerge(platform)
    )
    const result = await Effect.runPromise(Effect.gen(function*() {
      const store = yield* TokenStore
      const before = yield* Effect.result(store.load)
      let saved = 0, failed = 0, lost = 0, maxSaveMillis = 0
      let last = before._tag === "Success" && before.success !== undefined ? before.success.expiresAt - 1_800_000_000 : 0
      const messages = new Set()
      const started = Date.now()
      for (let i = Number(first); i < Number(first) + Number(count); i++) {
        const t0 = Date.now()
        const outcome = yield* Effect.result(store.save(set(i)))
        maxSaveMillis = Math.max(maxSaveMillis, Date.now() - t0)
        if (outcome._tag === "Success") {
          saved++
          last = i
        } else {
          failed++
          messages.add(`${outcome.failure._tag}: ${outcome.failure.message}`)
        }
        // What is on disk must be the last save that succeeded: nothing lost, nothing half written.
        const now = yield* Effect.result(store.load)
        const seen = now._tag === "Success" ? now.success?.expiresAt - 1_800_000_000 : -1
        if (seen !== last) lost++
      }
      return { saved, failed, lost, last, messages: [...messages], millis: Date.now() - started, maxSaveMillis }
    }).pipe(Effect.provide(layer)))
    print({ ok: true, ...result })
  } else if (mode === "load-loop") {
    const [storageDir, stopFile, pause = "0"] = rest
    const { TokenStore } = await load("storage/TokenStore.js")
    const { KimiAuthConfig } = await load("config/KimiAuthConfig.js")
    const { DeviceIdentity } = await load("oauth/DeviceIdentity.js")
    const layer = TokenStore.layerFile.pipe(
      Layer.provideMerge(DeviceIdentity.layerFixed("00000000-0000-4000-8000-0000000000ee")),
      Layer.provideMerge(KimiAuthConfig.layer({ storageDir })),
      Layer.provideMerge(platform)
    )
    const result = await Effect.runPromise(Effect.gen(function*() {
      const store = yield* TokenStore
      let loads = 0, missing = 0
      const errors = new Set()
      const seen = new Set()
      while (!fs.existsSync(stopFile)) {
        const r = yield* Effect.result(store.load)
        loads++
        if (r._tag === "Failure") errors.add(`${r.failure._tag}: ${r.failure.message}`)
        else if (r.success === undefined) missing++
        else seen.add(Redacted.value(r.success.accessToken))
        if (Number(pause) > 0) yield* Effect.sleep(Number(pause))
      }
      return { loads, missing, errors: [...errors], seen: [...seen].sort() }
    }).pipe(Effect.provide(layer)))
    print({ ok: true, ...result })
  } else if (mode === "hold-open") {
    const [file, holdMs, gapMs, totalMs] = rest.map((x, i) => (i === 0 ? x : Number(x)))
    const stopFile = rest[4]
    let opens = 0, torn = 0, missing = 0
    const end = Date.now() + totalMs
    do {
      let fd
      try {
        fd = fs.openSync(file, "r")
      } catch (e) {
        missing++
        await sleep(1)
        continue
      }
      if (opens++ === 0) print({ opened: true })
      try {
        const text = fs.readFileSync(fd, "utf8")
        try {
          const t = JSON.parse(text)
          if (typeof t.access_token !== "string" || !t.access_token.startsWith("at-save-")) torn++
        } catch {
          torn++
        }
        // Held for <hold ms>, or until the stop file appears.
        const until = Date.now() + holdMs
        while (Date.now() < until && !(stopFile !== undefined && fs.existsSync(stopFile))) await sleep(Math.min(20, holdMs))
      } finally {
        fs.closeSync(fd)
      }
      if (gapMs > 0) await sleep(gapMs)
    } while (Date.now() < end && !(stopFile !== undefined && fs.existsSync(stopFile)))
    print({ ok: true, opens, torn, missing })
  } else if (mode === "start-time") {
    const pid = Number(rest[0])
    // The lock's process identity (lock/FileLock.js imports it): start times are read by async child processes.
    const ProcessIdentity = await load("lock/ProcessIdentity.js")
    print({
      ok: true,
      startTime: (await Effect.runPromise(ProcessIdentity.processStartTime(pid))) ?? null,
      ownStartTime: (await Effect.runPromise(ProcessIdentity.processStartTime(process.pid))) ?? null,
      alive: ProcessIdentity.isPidAlive(pid)
    })
  } else {
    throw new Error(`unknown mode ${mode}`)
  }
}

run().then(
  () => process.exit(0),
  (e) => {
    print({ ok: false, tag: e?._tag ?? null, message: String(e?.message ?? e) })
    process.exit(1)
  }
)
