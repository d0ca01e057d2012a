/**
 * The one "below the API base" rule: which requests the authorizing fetch
 * and the `HttpClient` layer authorize (anything else passes through
 * untouched, so a bearer never leaves for another host or path), and how the
 * AI SDK provider moves a request to the base of the login's issuer.
 *
 * @since 0.2.0
 */

/** True when `url` is the API base itself or below it (`{base}/…`); a sibling path such as `{base}x` is not. */
export const isBelowApiBase = (url: string, base: string): boolean =>
  url === base || url.startsWith(base.endsWith("/") ? base : `${base}/`)

/** `url` moved from below `from` to below `to`; `undefined` when it is not below `from`. */
export const rebased = (url: string, from: string, to: string): string | undefined => {
  if (!isBelowApiBase(url, from)) return undefined
  const rest = url.slice(from.length)
  return `${to.endsWith("/") && rest.startsWith("/") ? to.slice(0, -1) : to}${rest}`
}
