// Throwaway probe plugin: shows what OpenCode 1.18.33 does with an auth plugin.
// Plain JS, no dependencies. Every observation is appended as one JSON line to
// the file named by PROBE_LOG (or options.log). Behaviour switches come from the
// environment of the opencode process (PROBE_*) or from the plugin options.
//
// It is NOT the real plugin; test/opencode/probe.test.ts drives it through the
// harness in test/support/opencode.ts.
//
// Switches (env of the opencode process, or the same-named plugin option):
//   PROBE_LOG / log                 JSONL file for the observations
//   PROBE_BASE_URL / baseURL        baseURL put into provider kimi by the config hook
//   PROBE_CONFIG_BASEURL=0          leave options.baseURL out of the config hook
//   PROBE_LOADER_BASE_URL           a different baseURL returned by the loader
//   PROBE_CONFIG_FETCH=1            also put a fetch function into the provider options
//   PROBE_FETCH_MODE                ok | throw | <http status> (+ PROBE_FETCH_BODY) |
//                                   set (client.auth.set on 1st call) | external |
//                                   external-delete | external-corrupt (auth.json edits)
//   PROBE_CALLBACK_DELAY_MS         how long the oauth callback waits (default 300)
//   PROBE_CALLBACK_RESULT           failed | throw
//   PROBE_AUTHORIZE=throw           authorize() throws
//   PROBE_TIMER=1|keep              an un-unref'd interval, cleared by dispose or kept
//   PROBE_DISPOSE=hang|<ms>         dispose never resolves / takes that long
import fs from "node:fs"

/** Named export: a constant (checks that non-plugin exports are tolerated). */
export const PROBE_VERSION = "probe-1"

/** Named export: a class. */
export class ProbeThing {
  constructor(name) {
    this.name = name
  }
}

/** Named export: a function that is not a plugin. */
export function describeHeaders(headers) {
  if (headers === undefined) return "undefined"
  if (typeof Headers !== "undefined" && headers instanceof Headers) return "Headers"
  if (Array.isArray(headers)) return "array"
  return typeof headers === "object" ? `object:${Object.getPrototypeOf(headers)?.constructor?.name}` : typeof headers
}

const started = Date.now()

function makeLog(file) {
  return (event, data = {}) => {
    if (!file) return
    const line = JSON.stringify({ t: Date.now() - started, pid: process.pid, event, ...data })
    try {
      fs.appendFileSync(file, line + "\n")
    } catch {}
  }
}

function headersToObject(headers) {
  if (headers === undefined) return undefined
  if (typeof Headers !== "undefined" && headers instanceof Headers) return Object.fromEntries(headers.entries())
  if (Array.isArray(headers)) return Object.fromEntries(headers)
  return { ...headers }
}

function describeBody(body) {
  if (body === undefined || body === null) return String(body)
  if (typeof body === "string") return "string"
  if (typeof ReadableStream !== "undefined" && body instanceof ReadableStream) return "ReadableStream"
  if (body instanceof Uint8Array) return "Uint8Array"
  if (body instanceof ArrayBuffer) return "ArrayBuffer"
  return `object:${Object.getPrototypeOf(body)?.constructor?.name}`
}

const server = async (input, options) => {
  const opts = options ?? {}
  const env = process.env
  const log = makeLog(opts.log ?? env.PROBE_LOG)
  const baseURL = opts.baseURL ?? env.PROBE_BASE_URL ?? "http://127.0.0.1:9/coding/v1"
  const mode = () => opts.fetchMode ?? env.PROBE_FETCH_MODE ?? "ok"
  log("server", {
    inputKeys: Object.keys(input ?? {}).sort(),
    options: options === undefined ? "<undefined>" : options,
    directory: input?.directory,
    serverUrl: String(input?.serverUrl ?? ""),
    hasClientAuthSet: typeof input?.client?.auth?.set === "function",
    bun: typeof Bun !== "undefined" ? Bun.version : undefined,
    node: process.versions.node,
    argv: process.argv.slice(1)
  })

  // PROBE_TIMER=1: a long-lived, NOT unref'd interval, cleared by dispose.
  // PROBE_TIMER=keep: the same, never cleared. Does either keep `opencode run` alive?
  const timerMode = opts.timer ?? env.PROBE_TIMER
  let timer
  if (timerMode === "1" || timerMode === "keep") {
    timer = setInterval(() => log("timer-tick"), 1000)
  }

  let fetchCalls = 0
  return {
    config: async (config) => {
      log("config", {
        providerKeys: Object.keys(config.provider ?? {}),
        plugin: config.plugin
      })
      config.provider ??= {}
      config.provider.kimi = {
        name: "Kimi (probe)",
        npm: "@ai-sdk/openai-compatible",
        options: {
          // PROBE_CONFIG_BASEURL=0: leave baseURL to the loader.
          ...((opts.configBaseURL ?? env.PROBE_CONFIG_BASEURL) === "0" ? {} : { baseURL }),
          // PROBE_CONFIG_FETCH=1: a fetch function put straight into the provider
          // options by the config hook (no auth.json entry, no loader needed?).
          ...((opts.configFetch ?? env.PROBE_CONFIG_FETCH) === "1"
            ? {
                fetch: async (request, init) => {
                  log("config-fetch", { url: typeof request === "string" ? request : request?.url, headers: headersToObject(init?.headers) })
                  const headers = new Headers(init?.headers)
                  headers.set("x-probe-config-fetch", "1")
                  return fetch(request, { ...init, headers })
                }
              }
            : {})
        },
        models: {
          "kimi-for-coding": {
            name: "Kimi For Coding (probe)",
            limit: { context: 262144, output: 32768 }
          }
        }
      }
    },
    auth: {
      provider: "kimi",
      loader: async (getAuth, provider) => {
        const auth = await getAuth()
        log("loader", {
          auth,
          providerId: provider?.id,
          providerKeys: Object.keys(provider ?? {}).sort(),
          providerOptions: provider?.options,
          models: Object.keys(provider?.models ?? {})
        })
        return {
          apiKey: "probe-api-key",
          // PROBE_LOADER_BASE_URL: a different baseURL from the loader than from the config hook.
          baseURL: opts.loaderBaseURL ?? env.PROBE_LOADER_BASE_URL ?? baseURL,
          async fetch(request, init) {
            const n = ++fetchCalls
            const auth2 = await getAuth()
            const url = typeof request === "string" ? request : request instanceof URL ? request.href : request.url
            log("fetch", {
              n,
              inputType: typeof request === "string" ? "string" : request instanceof Request ? "Request" : request instanceof URL ? "URL" : typeof request,
              url,
              method: init?.method,
              headersType: describeHeaders(init?.headers),
              headers: headersToObject(init?.headers),
              bodyType: describeBody(init?.body),
              bodyLength: typeof init?.body === "string" ? init.body.length : undefined,
              signal: init?.signal !== undefined,
              initKeys: Object.keys(init ?? {}).sort(),
              initTimeout: init?.timeout,
              getAuth: auth2
            })
            const m = mode()
            if (m === "throw") throw new Error("probe: refresh failed, run `kimi-auth login` (PROBE_THROW)")
            if (/^\d{3}$/.test(m)) {
              // PROBE_FETCH_MODE=<status>: answer that status without calling the server;
              // body from PROBE_FETCH_BODY (sent as-is) or an OpenAI-style JSON error.
              const body =
                opts.fetchBody ??
                env.PROBE_FETCH_BODY ??
                JSON.stringify({ error: { message: `probe: ${m} from plugin fetch`, type: "invalid_authentication_error" } })
              return new Response(body, {
                status: Number(m),
                headers: { "content-type": body.startsWith("{") ? "application/json" : "text/plain" }
              })
            }
            if (m === "external" && n === 1) {
              // Rewrite auth.json behind OpenCode's back: does getAuth() re-read the file?
              const file = `${env.XDG_DATA_HOME}/opencode/auth.json`
              const all = JSON.parse(fs.readFileSync(file, "utf8"))
              all.kimi = { ...all.kimi, access: "probe-access-ext" }
              fs.writeFileSync(file, JSON.stringify(all, null, 2))
              log("auth-external", { after: await getAuth() })
            }
            if ((m === "external-delete" || m === "external-corrupt") && n === 1) {
              // Remove the entry / corrupt the file behind OpenCode's back: what does getAuth() give?
              const file = `${env.XDG_DATA_HOME}/opencode/auth.json`
              const all = JSON.parse(fs.readFileSync(file, "utf8"))
              delete all.kimi
              fs.writeFileSync(file, m === "external-corrupt" ? "{ not json" : JSON.stringify(all, null, 2))
              let after
              try {
                after = (await getAuth()) ?? "<undefined>"
              } catch (e) {
                after = `<threw ${e?.name}: ${e?.message}>`
              }
              log("auth-external", { after })
            }
            if (m === "set" && n === 1) {
              await input.client.auth.set({
                path: { id: "kimi" },
                body: { type: "oauth", refresh: "probe-refresh-2", access: "probe-access-2", expires: Date.now() + 3_600_000 }
              })
              log("auth-set", { after: await getAuth() })
            }
            const headers = new Headers(init?.headers)
            headers.set("authorization", `Bearer ${auth2?.access ?? "none"}`)
            headers.set("x-probe", "1")
            headers.set("user-agent", "probe-agent/1")
            return fetch(request, { ...init, headers })
          }
        }
      },
      methods: [
        {
          type: "oauth",
          label: "Kimi device login",
          authorize: async (inputs) => {
            log("authorize", { inputs })
            if ((opts.authorize ?? env.PROBE_AUTHORIZE) === "throw") throw new Error("probe: device authorization failed (PROBE_AUTHORIZE=throw)")
            return {
              url: "http://127.0.0.1:9/device?user_code=ABCD-EFGH",
              instructions: "Enter code: ABCD-EFGH",
              method: "auto",
              callback: async () => {
                log("callback-start")
                const delay = Number(opts.callbackDelayMs ?? env.PROBE_CALLBACK_DELAY_MS ?? 300)
                await new Promise((r) => setTimeout(r, delay))
                const outcome = opts.callbackResult ?? env.PROBE_CALLBACK_RESULT
                if (outcome === "throw") throw new Error("probe: the device code expired (PROBE_CALLBACK_RESULT=throw)")
                if (outcome === "failed") {
                  log("callback-end", { type: "failed" })
                  return { type: "failed" }
                }
                const result = {
                  type: "success",
                  refresh: "probe-refresh-1",
                  access: "probe-access-1",
                  expires: Date.now() + 3_600_000
                }
                log("callback-end", result)
                return result
              }
            }
          }
        }
      ]
    },
    "chat.headers": async (input, output) => {
      log("chat.headers", { provider: input?.model?.providerID ?? input?.provider?.info?.id, headers: output?.headers })
    },
    dispose: async () => {
      log("dispose")
      // PROBE_DISPOSE=hang: never resolve. Does OpenCode wait for dispose at exit?
      // PROBE_DISPOSE=<ms>: take that long.
      const disposeMode = opts.dispose ?? env.PROBE_DISPOSE
      if (disposeMode === "hang") await new Promise(() => {})
      if (disposeMode && /^\d+$/.test(disposeMode)) await new Promise((r) => setTimeout(r, Number(disposeMode)))
      log("dispose-end")
      if (timer && timerMode !== "keep") clearInterval(timer)
    }
  }
}

export default { id: "opencode-kimi-auth-probe", server }
