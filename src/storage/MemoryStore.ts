/**
 * The in-memory token store (`TokenStore.layerMemory`, for tests and
 * embedders that keep no file): the file store's semantics without a disk,
 * its notes in memory too (`NoteOps.makeMemoryNotes`).
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"
import * as FileLock from "../lock/FileLock.js"
import type { TokenSet } from "../tokens/TokenSet.js"
import { makeMemoryNotes } from "./NoteOps.js"
import type { PreparedSave, TokenStoreShape } from "./TokenStore.js"
import { secretsToForget } from "./TokenStoreDecisions.js"

/**
 * An in-memory store with the same semantics (tests): `load` returns what was
 * last saved, `clear` records the logout and reports whether there was
 * anything, the notes live in memory, and `withLock` is an in-process lock
 * with the default 30 s bounded wait.
 */
export const makeMemory = (initial?: TokenSet): Effect.Effect<TokenStoreShape> =>
  Effect.gen(function*() {
    const ref = yield* Ref.make<TokenSet | undefined>(initial)
    const path = "memory:oauth.json"
    const lock = yield* FileLock.makeInProcess({ path: `${path}.lock`, timeout: "30 seconds" })
    const notes = yield* makeMemoryNotes
    const save = (tokens: TokenSet) => Effect.andThen(Ref.set(ref, tokens), notes.clearInFlight)
    const prepareSave = Effect.map(notes.readInFlight, (interrupted): PreparedSave => ({
      interrupted,
      markInFlight: notes.markInFlight,
      abandon: notes.clearInFlight,
      commit: save
    }))
    return {
      ...notes,
      path,
      load: Ref.get(ref),
      save,
      prepareSave,
      clear: Ref.getAndSet(ref, undefined).pipe(
        Effect.tap((previous) => notes.recordLoggedOut(secretsToForget(previous)).pipe(Effect.ignore)),
        Effect.map((previous) => previous !== undefined)
      ),
      withLock: lock.withLock
    } satisfies TokenStoreShape
  })
