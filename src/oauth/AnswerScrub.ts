/**
 * Removing the secrets an OAuth request sent (the device code, the refresh
 * token) from what its answer may show: a server that echoes them back in an
 * error must not put them into our errors, in any encoding.
 *
 * Scrubbing the raw body ({@link redactSecrets}: as is, URL-encoded,
 * JSON-escaped, base64) is not enough on its own: JSON may spell a token in
 * `\uXXXX` escapes, which decoding turns back into the token. So the text is
 * scrubbed again after decoding, at every level where something is kept:
 *
 * - {@link scrubBody}: the body for excerpts; every JSON string literal in it
 *   is decoded and scrubbed, and so is the body with its escapes decoded
 *   (a body that is not JSON at all);
 * - {@link scrubText}: one decoded field (`error`, `error_description`,
 *   `error_uri`), after the JSON decoding.
 *
 * @since 0.2.0
 */
import { redactSecrets } from "../Errors.js"

/**
 * `text` with `f` applied to each JSON string literal (quotes and escapes
 * included, on one line). One pass, linear: a literal that does not close
 * before the end of its line is left as text, and no literal starts inside
 * it (a hostile body of 64 KiB of `\"` took seconds with a regular expression).
 */
const mapLiterals = (text: string, f: (literal: string) => string): string => {
  let out = ""
  let i = 0
  while (i < text.length) {
    const start = text.indexOf("\"", i)
    if (start < 0) break
    let j = start + 1
    while (j < text.length && text[j] !== "\"" && text[j] !== "\n" && text[j] !== "\r") j += text[j] === "\\" ? 2 : 1
    if (text[j] === "\"") {
      out += text.slice(i, start) + f(text.slice(start, j + 1))
      i = j + 1
    } else {
      out += text.slice(i, j)
      i = j
    }
  }
  return out + text.slice(i)
}

/** A JSON escape sequence. */
const ESCAPE = /\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])/g

const unescapeOne = (e: string): string => {
  try {
    return JSON.parse(`"${e}"`) as string
  } catch {
    return e
  }
}

/** `text` with every JSON escape sequence decoded (a view for searching; never parsed). */
const unescaped = (text: string): string => text.replace(ESCAPE, unescapeOne)

/** Every form of each of `secrets` in `text` (a decoded value) replaced by `<redacted>`. */
export const scrubText = (text: string, secrets: ReadonlyArray<string>): string => redactSecrets(text, secrets)

/** A JSON string literal, scrubbed after decoding; re-encoded only when something was removed. */
const scrubLiteral = (literal: string, secrets: ReadonlyArray<string>): string => {
  if (!literal.includes("\\")) return literal
  let decoded: string
  try {
    decoded = JSON.parse(literal) as string
  } catch {
    return literal
  }
  const clean = redactSecrets(decoded, secrets)
  return clean === decoded ? literal : JSON.stringify(clean)
}

/**
 * `body` with every form of each of `secrets` replaced by `<redacted>`, as
 * is and after JSON decoding: each string literal is decoded and scrubbed
 * (JSON stays JSON); if the body with its escapes decoded still shows a
 * secret (escapes outside any literal), that decoded view, scrubbed, is
 * what is kept.
 */
export const scrubBody = (body: string, secrets: ReadonlyArray<string>): string => {
  if (secrets.every((s) => s === "")) return body
  const scrubbed = mapLiterals(redactSecrets(body, secrets), (literal) => scrubLiteral(literal, secrets))
  if (!scrubbed.includes("\\")) return scrubbed
  const view = unescaped(scrubbed)
  const cleanView = redactSecrets(view, secrets)
  return cleanView === view ? scrubbed : cleanView
}
