/**
 * The `fetch` every edge sends with: the platform's, made to honour
 * `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`, loopback always direct.
 *
 * - No proxy variable set: `globalThis.fetch`, nothing else loaded.
 * - Node with a proxy variable: the `fetch` of `ProxyFetch.ts`, imported on
 *   the first request only (a separate chunk of the bundles), so the CLI's
 *   start and the no-proxy case pay nothing. Node's own env proxy support
 *   (`NODE_USE_ENV_PROXY`, 22.21+ and 24) is not relied on: it is off by
 *   default, read only at start-up, absent on Node 20, proxies loopback,
 *   and its failures do not name the proxy.
 * - Bun with a proxy variable: Bun's own `fetch` (it honours the variables),
 *   except that Bun 1.3 proxies loopback unless `NO_PROXY` names the host
 *   literally (it reads no CIDR ranges): before a loopback request the host
 *   is added to `NO_PROXY` (to `no_proxy` too when that is set), once. The
 *   only change this makes to the environment, and only for loopback.
 *
 * Effect-free (the promise edges import it); `KimiAuth.layerFetchHttpClient`
 * is the `effect/http` side.
 *
 * @since 0.2.0
 */
import { hasProxyEnv, isLoopbackHost, type ProxyEnv, proxyFor } from "./ProxyEnv.js"

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined"

let proxied: Promise<typeof globalThis.fetch> | undefined

/** The proxying fetch, loaded on its first call. */
const lazyProxyFetch: typeof globalThis.fetch = (input, init) =>
  (proxied ??= import("./ProxyFetch.js").then((m) => m.makeProxyFetch(process.env))).then((f) => f(input, init))

/** Names a loopback host in `NO_PROXY` (and `no_proxy` when set) unless it is there already. */
const bunBypass = (host: string) => {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase()
  const keys = ["no_proxy", "NO_PROXY"].filter((k) => (process.env[k] ?? "").trim() !== "")
  for (const k of keys.length === 0 ? ["NO_PROXY"] : keys) {
    const value = (process.env[k] ?? "").trim()
    if (!value.split(/[,\s]+/).some((e) => e.toLowerCase() === name || e === "*")) process.env[k] = value === "" ? name : `${value},${name}`
  }
}

/** Bun's fetch, with loopback made direct. */
const bunFetch: typeof globalThis.fetch = (input, init) => {
  try {
    const host = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url).hostname
    if (isLoopbackHost(host)) bunBypass(host)
  } catch {
    // Not a URL: fetch says so itself.
  }
  return globalThis.fetch(input, init)
}

/**
 * The `fetch` that honours the proxy variables in this runtime, or
 * `undefined` when none is set (then `globalThis.fetch` is the one).
 */
export const proxyAwareFetch = (env: ProxyEnv = process.env): typeof globalThis.fetch | undefined =>
  !hasProxyEnv(env) ? undefined : isBun ? bunFetch : lazyProxyFetch

/** The `fetch` to send with: {@link proxyAwareFetch}, else `globalThis.fetch`. */
export const envFetch = (env: ProxyEnv = process.env): typeof globalThis.fetch => proxyAwareFetch(env) ?? globalThis.fetch

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
