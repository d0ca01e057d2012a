/**
 * The `fetch` every edge sends with: the platform's, made to honour
 * `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` on Node.
 *
 * - No proxy variable set, or Bun (its `fetch` honours them, `NO_PROXY`
 *   included): `globalThis.fetch`, nothing else loaded.
 * - Node with a proxy variable: the `fetch` of `ProxyFetch.ts`, imported on
 *   the first request only (a separate chunk of the bundles), so the CLI's
 *   start and the no-proxy case pay nothing. Node's own env proxy support
 *   (`NODE_USE_ENV_PROXY`, 22.21+ and 24) is not relied on: it is off by
 *   default, read only at start-up, absent on Node 20, and its failures do
 *   not name the proxy.
 *
 * Effect-free (the promise edges import it); `KimiAuth.layerFetchHttpClient`
 * is the `effect/http` side.
 *
 * @since 0.2.0
 */
import { hasProxyEnv, type ProxyEnv, proxyFor } from "./ProxyEnv.js"

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"

let proxied: Promise<typeof globalThis.fetch> | undefined

/** The proxying fetch, loaded on its first call. */
export const lazyProxyFetch: typeof globalThis.fetch = (input, init) =>
  (proxied ??= import("./ProxyFetch.js").then((m) => m.makeProxyFetch(process.env))).then((f) => f(input, init))

/** Whether requests need our proxying fetch: Node (not Bun) with a proxy variable set. */
export const needsProxyFetch = (env: ProxyEnv = process.env): boolean => !isBun && hasProxyEnv(env)

/**
 * The `fetch` to send with: `globalThis.fetch` or, when
 * {@link needsProxyFetch}, one that honours the proxy variables.
 */
export const envFetch = (env: ProxyEnv = process.env): typeof globalThis.fetch =>
  needsProxyFetch(env) ? lazyProxyFetch : globalThis.fetch

/**
 * How a failed request to `url` went, when a proxy was involved: ` through
 * the proxy host:port (HTTPS_PROXY)` and what went wrong, for messages;
 * `""` when it went direct. Names the proxy, never its credentials.
 */
export const proxyNote = (cause: unknown, url: string, env: ProxyEnv = process.env): string => {
  // Our proxying fetch says itself which proxy failed.
  for (let e = cause, depth = 0; typeof e === "object" && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const p = e as { name?: unknown; proxy?: unknown; variable?: unknown; detail?: unknown }
    if (p.name === "ProxyError" && typeof p.proxy === "string" && typeof p.variable === "string") {
      return ` through the proxy ${p.proxy} (${p.variable})${typeof p.detail === "string" ? `: ${p.detail}` : ""}`
    }
  }
  // Bun's own fetch (or a timeout, with no cause) went to the proxy the environment names.
  try {
    const decision = proxyFor(url, env)
    return decision._tag === "Proxy" ? ` through the proxy ${decision.route.label} (${decision.route.variable})` : ""
  } catch {
    return ""
  }
}
