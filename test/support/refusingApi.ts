/** A Kimi stand-in whose API refuses every token, and a child that sends it requests (the built facade). */
import * as Effect from "effect/Effect"
import * as path from "node:path"
import { type ScriptedServer, startScriptedServer } from "./scriptedServer.js"
import { repoRoot, spawnNode } from "./tmp.js"

/** A loopback server: its token endpoint issues `at-n` / `rt-n` (900 s); its API answers 401 to every token. */
export const startRefusingApi = (): Promise<ScriptedServer> => {
  let n = 0
  return startScriptedServer((req) => {
    if (req.path === "/api/oauth/token") {
      n++
      return { status: 200, body: { access_token: `at-${n}`, refresh_token: `rt-${n}`, expires_in: 900, token_type: "Bearer" } }
    }
    return { status: 401, body: { error: { message: "invalid token", type: "invalid_authentication_error" } } }
  })
}

/** What one `refused-fetches.mjs` child saw: each status, and the last body's error message. */
export interface RefusedFetches {
  readonly statuses: Array<unknown>
  readonly message: string
}

/**
 * Runs `test/fixtures/refused-fetches.mjs` with the built package: `requests`
 * API requests through the facade's fetch, over the storage folder `dir`.
 */
export const refusedFetchesChild = (url: string, dir: string, requests: number, env: Readonly<Record<string, string>> = {}) =>
  spawnNode(path.join(repoRoot, "test", "fixtures", "refused-fetches.mjs"), [path.join(repoRoot, "dist"), url, dir, String(requests)], env)

/** Parses the last line a `refused-fetches.mjs` child printed. */
export const refusedFetchesResult = (output: string): RefusedFetches => JSON.parse(output.trim().split("\n").pop()!) as RefusedFetches

/** Runs one child to its end and returns what it saw. */
export const runRefusedFetches = (url: string, dir: string, requests: number, env: Readonly<Record<string, string>> = {}) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const child = yield* refusedFetchesChild(url, dir, requests, env)
    yield* child.exited
    return refusedFetchesResult(child.output())
  })))
