/**
 * Reading a response body without trusting the server: as a stream, with a
 * size cap, never sized by `Content-Length`.
 *
 * `Response.text()` buffers whatever arrives: a `Content-Length` of 2 GB made
 * Node abort (a V8 check failure no code can catch) and an endless body grew
 * a process past 12 GB. The readers here stop, and abort the request, as soon
 * as the body passes the cap, so memory stays flat whatever the server sends.
 * The deadline is the caller's: wrap the effect in a timeout (the fetch signal
 * for {@link readWebTextCapped}); a cancelled read aborts the connection.
 *
 * Use them for every body the package reads itself (OAuth answers, API JSON);
 * never for streamed chat bodies, which pass through untouched.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as HttpClientError from "effect/http/HttpClientError"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"

/** Cap of an OAuth answer: they are a few hundred bytes; 64 KiB is generous. */
export const OAUTH_BODY_LIMIT_BYTES = 64 * 1024

/** Cap of an API JSON body the package reads itself (`/models`, `/usages`). */
export const API_BODY_LIMIT_BYTES = 4 * 1024 * 1024

/** The body is larger than the cap (declared by `Content-Length`, or counted while reading). */
export class BodyTooLargeError extends Data.TaggedError("BodyTooLargeError")<{
  /** The cap, in bytes. */
  readonly limitBytes: number
  /** The declared `Content-Length`, when the server sent one above the cap. */
  readonly declaredBytes: number | undefined
  readonly message: string
}> {}

const tooLarge = (limitBytes: number, declaredBytes: number | undefined) =>
  new BodyTooLargeError({
    limitBytes,
    declaredBytes,
    message: declaredBytes !== undefined
      ? `The answer declared ${declaredBytes} bytes, more than the ${limitBytes} bytes allowed; it was not read.`
      : `The answer was larger than the ${limitBytes} bytes allowed; reading stopped there.`
  })

/** The `Content-Length` a server declared, when it is a plain non-negative integer. */
export const declaredLength = (value: string | null | undefined): number | undefined => {
  if (value === undefined || value === null || !/^\s*\d+\s*$/.test(value)) return undefined
  const n = Number(value)
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER
}

/** The chunks joined into one array of `total` bytes. */
export const concatBytes = (chunks: ReadonlyArray<Uint8Array>, total: number): Uint8Array => {
  const all = new Uint8Array(total)
  let at = 0
  for (const c of chunks) {
    all.set(c, at)
    at += c.length
  }
  return all
}

const decodeUtf8 = (chunks: ReadonlyArray<Uint8Array>, total: number): string =>
  new TextDecoder().decode(concatBytes(chunks, total))

/** The first `maxBytes` of the chunks as UTF-8 text. */
const decodePrefix = (chunks: ReadonlyArray<Uint8Array>, total: number, maxBytes: number): string =>
  new TextDecoder().decode(concatBytes(chunks, total).subarray(0, Math.min(total, maxBytes)))

/**
 * Reads the body of an Effect `HttpClientResponse` as UTF-8 text, at most
 * `limitBytes` of it. A declared `Content-Length` above the cap fails before a
 * byte is read; a body that grows past it fails as soon as it does. Either way
 * the request is aborted (the response stream's finalizer). A response with no
 * body reads as `""`.
 */
export const readTextCapped = (
  response: HttpClientResponse.HttpClientResponse,
  limitBytes: number
): Effect.Effect<string, BodyTooLargeError | HttpClientError.HttpClientError> =>
  Effect.suspend(() => {
    const declared = declaredLength(response.headers["content-length"])
    const chunks: Array<Uint8Array> = []
    let total = 0
    return response.stream.pipe(
      Stream.runForEach((chunk) => {
        // Checked on the first chunk too, so the stream (and its abort finalizer) always runs.
        if (declared !== undefined && declared > limitBytes) return Effect.fail(tooLarge(limitBytes, declared))
        total += chunk.length
        if (total > limitBytes) return Effect.fail(tooLarge(limitBytes, undefined))
        chunks.push(chunk)
        return Effect.void
      }),
      Effect.catchIf(
        (e): e is HttpClientError.HttpClientError => e._tag === "HttpClientError" && e.reason._tag === "EmptyBodyError",
        () => Effect.void
      ),
      Effect.map(() => decodeUtf8(chunks, total))
    )
  })

/**
 * Reads the body of a web `Response` as UTF-8 text, at most `limitBytes` of
 * it; rejects with {@link BodyTooLargeError} past the cap and cancels the
 * body, which aborts the connection. The deadline is the `signal` given to
 * `fetch` (for example `AbortSignal.timeout(ms)`): it also ends the read.
 */
export const readWebTextCapped = async (response: Response, limitBytes: number): Promise<string> => {
  const declared = declaredLength(response.headers.get("content-length"))
  if (response.body === null) return ""
  if (declared !== undefined && declared > limitBytes) {
    await response.body.cancel().catch(() => undefined)
    throw tooLarge(limitBytes, declared)
  }
  const reader = response.body.getReader()
  const chunks: Array<Uint8Array> = []
  let total = 0
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.length
      if (total > limitBytes) {
        await reader.cancel().catch(() => undefined)
        throw tooLarge(limitBytes, undefined)
      }
      chunks.push(value)
    }
  } finally {
    reader.releaseLock()
  }
  return decodeUtf8(chunks, total)
}

/**
 * The first `maxBytes` of an Effect `HttpClientResponse` body as text, the
 * rest not read: enough to classify an error answer. Unlike
 * {@link readTextCapped}, which fails past its cap, a longer body is cut,
 * not refused.
 */
export const readTextPrefix = (
  response: HttpClientResponse.HttpClientResponse,
  maxBytes: number
): Effect.Effect<string, HttpClientError.HttpClientError> =>
  Effect.suspend(() => {
    let size = 0
    return response.stream.pipe(
      Stream.takeUntil((chunk) => (size += chunk.byteLength) >= maxBytes),
      Stream.runCollect,
      Effect.map((chunks) => decodePrefix(chunks, chunks.reduce((n, c) => n + c.byteLength, 0), maxBytes))
    )
  })

/**
 * The first `maxBytes` of a web `Response` body as text, then the rest
 * cancelled: the web counterpart of {@link readTextPrefix}.
 */
export const readWebTextPrefix = async (response: Response, maxBytes: number): Promise<string> => {
  if (response.body === null) return ""
  const reader = response.body.getReader()
  const chunks: Array<Uint8Array> = []
  let size = 0
  try {
    while (size < maxBytes) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      size += value.byteLength
    }
  } finally {
    if (size >= maxBytes) await reader.cancel().catch(() => {})
    reader.releaseLock()
  }
  return decodePrefix(chunks, size, maxBytes)
}
