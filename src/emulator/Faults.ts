/**
 * Fault injection for the Kimi emulator: proxy-style 5xx pages, dropped
 * connections, 429 with `Retry-After`, added latency, and a model that
 * writes slowly (a pause between the chunks of a streamed answer).
 *
 * Each fault is off by default. With a `seed` the sequence of decisions is
 * deterministic: every request in scope draws exactly two numbers from a
 * seeded PRNG (mulberry32), whatever the outcome, so the same requests in the
 * same order get the same faults.
 *
 * @since 0.1.0
 */

/** Fault settings. Rates are shares of in-scope requests, 0..1. */
export interface FaultOptions {
  /** Share of requests answered 500, 502 or 503 with an HTML proxy error page. */
  readonly serverErrorRate?: number | undefined
  /** Share of requests whose connection is destroyed without any response. */
  readonly dropRate?: number | undefined
  /** Share of requests answered 429 with `Retry-After`. */
  readonly tooManyRequestsRate?: number | undefined
  /** The `Retry-After` value of 429 answers, in seconds. Default 1. */
  readonly retryAfterSeconds?: number | undefined
  /** Real (wall-clock) delay added before every in-scope request is handled, in ms. */
  readonly latencyMillis?: number | undefined
  /**
   * Real (wall-clock) pause before each chunk of a streamed chat answer after
   * the first, in ms: a model that writes slowly, so a client can be seen
   * passing the answer on as it arrives. Not scoped by `paths`.
   */
  readonly chunkDelayMillis?: number | undefined
  /**
   * Paths the faults apply to: an entry matches the path itself and every
   * path below it (`/coding/v1` matches `/coding/v1/models`). Default
   * `["/api/oauth", "/coding/v1"]`: the OAuth and API endpoints, not the
   * approval page.
   */
  readonly paths?: ReadonlyArray<string> | undefined
  /** Seed of the PRNG. Without one, `Math.random` decides. */
  readonly seed?: number | undefined
}

/** What to do with one request. */
export type FaultDecision =
  | { readonly _tag: "None" }
  | { readonly _tag: "ServerError"; readonly status: 500 | 502 | 503 }
  | { readonly _tag: "Drop" }
  | { readonly _tag: "TooManyRequests"; readonly retryAfterSeconds: number }

/** The default fault scope. */
export const DEFAULT_FAULT_PATHS: ReadonlyArray<string> = ["/api/oauth", "/coding/v1"]

/** mulberry32: a tiny seeded PRNG returning numbers in [0, 1). */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** True when `path` is `scope` or below it. */
export const pathInScope = (path: string, scopes: ReadonlyArray<string>): boolean =>
  scopes.some((s) => {
    const base = s.replace(/\/+$/, "")
    return base === "" || path === base || path.startsWith(`${base}/`)
  })

const clamp01 = (n: number | undefined) => (n === undefined || !Number.isFinite(n) ? 0 : Math.min(1, Math.max(0, n)))

const ERROR_STATUSES = [500, 502, 503] as const

/** Decides faults request by request; its settings can be replaced at run time. */
export class FaultInjector {
  private options: FaultOptions = {}
  private rng: () => number = Math.random

  constructor(options: FaultOptions = {}) {
    this.set(options)
  }

  /** Replaces the settings. A `seed` restarts the PRNG from it; without one the current PRNG goes on. */
  set(options: FaultOptions): void {
    this.options = options
    if (options.seed !== undefined) this.rng = seededRandom(options.seed)
  }

  /** The current settings. */
  get(): FaultOptions {
    return this.options
  }

  /** Latency to add for `path`, in ms (0 when out of scope). */
  latencyFor(path: string): number {
    const ms = this.options.latencyMillis ?? 0
    return ms > 0 && pathInScope(path, this.options.paths ?? DEFAULT_FAULT_PATHS) ? ms : 0
  }

  /** The pause between the chunks of a streamed chat answer, in ms (0: none). */
  chunkDelay(): number {
    const ms = this.options.chunkDelayMillis ?? 0
    return Number.isFinite(ms) && ms > 0 ? ms : 0
  }

  /** Decides the fault for one request to `path`. */
  decide(path: string): FaultDecision {
    const o = this.options
    const drop = clamp01(o.dropRate)
    const err = clamp01(o.serverErrorRate)
    const tooMany = clamp01(o.tooManyRequestsRate)
    if (drop + err + tooMany === 0 || !pathInScope(path, o.paths ?? DEFAULT_FAULT_PATHS)) return { _tag: "None" }
    const r = this.rng()
    const pick = this.rng()
    if (r < drop) return { _tag: "Drop" }
    if (r < drop + err) {
      return { _tag: "ServerError", status: ERROR_STATUSES[Math.floor(pick * ERROR_STATUSES.length)] ?? 502 }
    }
    if (r < drop + err + tooMany) return { _tag: "TooManyRequests", retryAfterSeconds: o.retryAfterSeconds ?? 1 }
    return { _tag: "None" }
  }
}

const REASONS: Record<number, string> = {
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Temporarily Unavailable"
}

/** The HTML body a reverse proxy sends with a 5xx. */
export const proxyErrorPage = (status: number): string => {
  const title = `${status} ${REASONS[status] ?? "Server Error"}`
  return `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n` +
    `<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`
}
