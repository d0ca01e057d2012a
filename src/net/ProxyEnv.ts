/**
 * Which proxy a request goes through, from the environment, as curl and Bun
 * read it: a pure decision, no I/O.
 *
 * - `https:` URLs use `https_proxy`, else `HTTPS_PROXY`; `http:` URLs use
 *   `http_proxy`, else `HTTP_PROXY` (no fallback from one to the other, as
 *   curl and Bun). A value without a scheme is an `http://` proxy.
 * - `NO_PROXY` / `no_proxy` (lower case first): a comma or space separated
 *   list; `*` alone turns the proxy off; a name matches itself and every
 *   name below it (`example.com`, `.example.com` and `*.example.com` all
 *   match `example.com` and `api.example.com`, never `badexample.com`); an
 *   IPv4 entry may be a CIDR range (`10.0.0.0/8`); an entry with a port
 *   (`host:8443`, `[::1]:8443`) matches that port only.
 * - Loopback (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`) is never
 *   proxied, whatever the environment says.
 * - The proxy's credentials (`http://user:pass@host:port`) only ever leave
 *   as a `Proxy-Authorization` header: {@link ProxyRoute.label} is
 *   `host:port`, and an unusable value is never echoed (it may hold a password).
 *
 * @since 0.2.0
 */

/** The environment the decision reads (`process.env`). */
export type ProxyEnv = Readonly<Record<string, string | undefined>>

/** A proxy to send a request through. */
export interface ProxyRoute {
  /** The proxy's host name or address (an IPv6 address without brackets). */
  readonly host: string
  readonly port: number
  /** `host:port` (`[v6]:port`): what messages and logs name, never the credentials. */
  readonly label: string
  /** `Basic …` from the URL's user info, for `Proxy-Authorization`; a secret. */
  readonly authorization: string | undefined
  /** The variable it came from (`HTTPS_PROXY`, `http_proxy`, …). */
  readonly variable: string
}

/** What to do with one request. */
export type ProxyDecision =
  | { readonly _tag: "Direct" }
  | { readonly _tag: "Proxy"; readonly route: ProxyRoute }
  /** A proxy variable applies but cannot be used; `message` says which and why, without its value. */
  | { readonly _tag: "Invalid"; readonly variable: string; readonly message: string }

const PROXY_VARIABLES = ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"] as const

const nonEmpty = (v: string | undefined): string | undefined => (v !== undefined && v.trim() !== "" ? v.trim() : undefined)

/** True when any proxy variable is set: the only case the proxying fetch is loaded for. */
export const hasProxyEnv = (env: ProxyEnv): boolean => PROXY_VARIABLES.some((k) => nonEmpty(env[k]) !== undefined)

/** A host name lowered, without a trailing dot or IPv6 brackets. */
const normalHost = (host: string): string => {
  const h = host.toLowerCase().replace(/\.$/, "")
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h
}

const ipv4 = (host: string): number | undefined => {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host)
  if (m === null) return undefined
  const parts = m.slice(1).map(Number)
  if (parts.some((p) => p > 255)) return undefined
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0
}

/** `localhost`, a name below it, `127.0.0.0/8`, `::1` (also as `::ffff:127.x.y.z`). */
export const isLoopbackHost = (rawHost: string): boolean => {
  const host = normalHost(rawHost)
  if (host === "localhost" || host.endsWith(".localhost")) return true
  if (host === "::1" || host === "0:0:0:0:0:0:0:1") return true
  // An IPv4-mapped address as `URL` writes it: `::ffff:7f00:1` is 127.0.0.1.
  const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(host)
  if (mapped !== null) return parseInt(mapped[1]!, 16) >>> 8 === 127
  const v4 = ipv4(host.startsWith("::ffff:") ? host.slice(7) : host)
  return v4 !== undefined && v4 >>> 24 === 127
}

const defaultPort = (protocol: string) => (protocol === "https:" ? 443 : 80)

/** One `NO_PROXY` entry against a host and port. */
const matchesEntry = (rawEntry: string, host: string, port: number): boolean => {
  let entry = rawEntry.toLowerCase()
  let entryPort: number | undefined
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry)
  if (bracketed !== null) {
    entry = bracketed[1]!
    entryPort = bracketed[2] === undefined ? undefined : Number(bracketed[2])
  } else {
    const withPort = /^([^:]+):(\d+)$/.exec(entry)
    if (withPort !== null) {
      entry = withPort[1]!
      entryPort = Number(withPort[2])
    }
  }
  if (entryPort !== undefined && entryPort !== port) return false
  const cidr = /^([\d.]+)\/(\d{1,2})$/.exec(entry)
  if (cidr !== null) {
    const net = ipv4(cidr[1]!)
    const addr = ipv4(host)
    const bits = Number(cidr[2])
    if (net === undefined || addr === undefined || bits > 32) return false
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
    return ((net & mask) >>> 0) === ((addr & mask) >>> 0)
  }
  const name = normalHost(entry.replace(/^\*?\./, ""))
  if (name === "") return false
  return host === name || (ipv4(host) === undefined && !host.includes(":") && host.endsWith(`.${name}`))
}

/** Whether `NO_PROXY` (or `no_proxy`) says `host:port` goes direct. */
export const bypassesProxy = (noProxy: string | undefined, rawHost: string, port: number): boolean => {
  if (noProxy === undefined) return false
  const host = normalHost(rawHost)
  const entries = noProxy.split(/[,\s]+/).map((e) => e.trim()).filter((e) => e !== "")
  return entries.some((e) => e === "*" || matchesEntry(e, host, port))
}

/** Parses a proxy variable's value; `undefined` with a reason when it cannot be used. */
const parseProxy = (variable: string, value: string): ProxyRoute | string => {
  let url: URL
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`)
  } catch {
    return `${variable} is not a URL (expected http://host:port)`
  }
  if (url.protocol !== "http:") {
    return `${variable} names a ${url.protocol.replace(/:$/, "")}:// proxy; only http:// proxies are supported (the tunnel to Kimi is TLS either way)`
  }
  if (url.hostname === "") return `${variable} has no host (expected http://host:port)`
  const port = url.port === "" ? 80 : Number(url.port)
  const host = normalHost(url.hostname)
  const user = url.username === "" ? undefined : decodeURIComponent(url.username)
  const authorization = user === undefined && url.password === ""
    ? undefined
    : `Basic ${Buffer.from(`${user ?? ""}:${decodeURIComponent(url.password)}`).toString("base64")}`
  return { host, port, label: `${host.includes(":") ? `[${host}]` : host}:${port}`, authorization, variable }
}

/**
 * The decision for one request URL under `env`: direct, through a proxy, or
 * a proxy variable that applies but cannot be used.
 */
export const proxyFor = (target: URL | string, env: ProxyEnv): ProxyDecision => {
  const url = typeof target === "string" ? new URL(target) : target
  if (url.protocol !== "https:" && url.protocol !== "http:") return { _tag: "Direct" }
  if (isLoopbackHost(url.hostname)) return { _tag: "Direct" }
  const names = url.protocol === "https:" ? ["https_proxy", "HTTPS_PROXY"] : ["http_proxy", "HTTP_PROXY"]
  const variable = names.find((k) => nonEmpty(env[k]) !== undefined)
  if (variable === undefined) return { _tag: "Direct" }
  const port = url.port === "" ? defaultPort(url.protocol) : Number(url.port)
  if (bypassesProxy(nonEmpty(env["no_proxy"]) ?? nonEmpty(env["NO_PROXY"]), url.hostname, port)) return { _tag: "Direct" }
  const parsed = parseProxy(variable, nonEmpty(env[variable])!)
  return typeof parsed === "string" ? { _tag: "Invalid", variable, message: parsed } : { _tag: "Proxy", route: parsed }
}
