/**
 * Whether a secret can be reached from an error object, in any encoding:
 * everything `util.inspect` (any depth, hidden properties), `JSON.stringify`
 * and a walk over every own property (symbols, non-enumerables, causes, byte
 * arrays) can see, searched for the secret raw, URL-encoded, JSON-escaped and
 * base64 / base64url (every base64-looking run is decoded and searched too).
 */
import * as util from "node:util"

const walk = (value: unknown, out: Array<string>, seen: Set<unknown>, depth: number): void => {
  if (depth > 40) return
  if (typeof value === "string") {
    out.push(value)
    return
  }
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return
  if (typeof value !== "object" && typeof value !== "function") return
  if (value === null || seen.has(value)) return
  seen.add(value)
  if (value instanceof Uint8Array) {
    out.push(Buffer.from(value).toString("utf8"))
    return
  }
  if (value instanceof ArrayBuffer) {
    out.push(Buffer.from(value).toString("utf8"))
    return
  }
  if (value instanceof URLSearchParams) out.push(value.toString())
  if (value instanceof Map) for (const [k, v] of value) walk(k, out, seen, depth + 1), walk(v, out, seen, depth + 1)
  if (value instanceof Set) for (const v of value) walk(v, out, seen, depth + 1)
  for (const key of Reflect.ownKeys(value)) {
    let v: unknown
    try {
      v = (value as Record<PropertyKey, unknown>)[key]
    } catch {
      continue
    }
    if (typeof key === "string") out.push(key)
    walk(v, out, seen, depth + 1)
  }
}

/** Every text reachable from `value`. */
export const reachableText = (value: unknown): string => {
  const parts: Array<string> = []
  try {
    parts.push(util.inspect(value, { depth: Infinity, showHidden: true, getters: true, maxArrayLength: Infinity, maxStringLength: Infinity }))
  } catch {
    // inspect can throw on hostile getters; the walk still runs
  }
  try {
    parts.push(JSON.stringify(value) ?? "")
  } catch {
    // cycles
  }
  const cause = (value as { cause?: unknown } | null)?.cause
  if (cause !== undefined) {
    try {
      parts.push(JSON.stringify(cause) ?? "")
    } catch {
      // cycles
    }
  }
  walk(value, parts, new Set(), 0)
  return parts.join("\n")
}

let lastText: string | undefined
let lastRuns: Array<string> = []
/** Every base64-looking run of `text`, decoded at every alignment (memoised for the last text: callers check several secrets). */
const decodedRuns = (text: string): Array<string> => {
  if (text !== lastText) {
    lastText = text
    lastRuns = decodeRuns(text)
  }
  return lastRuns
}

const decodeRuns = (text: string): Array<string> =>
  [...text.matchAll(/[A-Za-z0-9+/_-]{16,}={0,2}/g)].flatMap((m) => {
    const run = m[0]
    // Every alignment, both alphabets.
    const outs: Array<string> = []
    for (let i = 0; i < 4; i++) {
      const s = run.slice(i).replace(/-/g, "+").replace(/_/g, "/")
      outs.push(Buffer.from(s, "base64").toString("latin1"))
    }
    return outs
  })

/** The encodings of `secret` found in `text` (empty when none). */
export const encodingsFound = (text: string, secret: string): Array<string> => {
  const found: Array<string> = []
  if (text.includes(secret)) found.push("raw")
  const lower = text.toLowerCase()
  if (lower.includes(encodeURIComponent(secret).toLowerCase()) && encodeURIComponent(secret) !== secret) found.push("url-encoded")
  if (lower.includes(new URLSearchParams({ s: secret }).toString().slice(2).toLowerCase()) && !found.includes("raw")) {
    if (!found.includes("url-encoded")) found.push("form-encoded")
  }
  const json = JSON.stringify(secret).slice(1, -1)
  if (json !== secret && text.includes(json)) found.push("json-escaped")
  if (decodedRuns(text).some((d) => d.includes(secret))) found.push("base64")
  return found
}

/** Where `secret` can be reached from `value`: a list of encodings, empty when nowhere. */
export const secretReach = (value: unknown, secret: string): Array<string> => encodingsFound(reachableText(value), secret)
