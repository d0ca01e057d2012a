// Throwaway probe: can one module serve OpenCode's two Kimi catalog providers?
// No default export: two named plugin objects `{ id, server }`, one per catalog
// provider (OpenCode 1.18.33 calls each named export as a plugin when the
// default is not a `{ id, server }` object). Each logs what it sees as JSON
// lines to PROBE_LOG: server, config, loader (with the catalog models),
// provider.models, and every request body its fetch is handed.
// Driven by test/opencode/probe.test.ts; facts in test/opencode/NOTES.md.
import fs from "node:fs"

const log = (event, data = {}) => {
  const file = process.env.PROBE_LOG
  if (file) fs.appendFileSync(file, JSON.stringify({ event, ...data }) + "\n")
}

/** The body without the conversation and the tools (the parts that say nothing about reasoning). */
const shape = (body) => {
  const { messages, tools, ...rest } = body
  return { ...rest, title: JSON.stringify(messages ?? []).includes("title generator") }
}

const make = (provider) => async (input, options) => {
  const baseURL = process.env.PROBE_BASE_URL
  log("server", { provider, options: options ?? null })
  const fetchFor = (where) => async (request, init) => {
    const url = typeof request === "string" ? request : request.url
    log("fetch", { provider, where, url, body: typeof init?.body === "string" ? shape(JSON.parse(init.body)) : null })
    const headers = new Headers(init?.headers)
    headers.set("authorization", "Bearer probe")
    return fetch(baseURL ? url.replace(/^https:\/\/api\.kimi\.(com|ai)\/coding\/v1/, baseURL) : request, { ...init, headers })
  }
  return {
    config: async (config) => {
      log("config", { provider, providerKeys: Object.keys(config.provider ?? {}) })
      if (process.env.PROBE_CONFIG_FETCH === "1") {
        config.provider ??= {}
        const own = config.provider[provider] ?? {}
        config.provider[provider] = { ...own, options: { ...own.options, fetch: fetchFor("config") } }
      }
      if (process.env.PROBE_VARIANTS === "1") {
        // An extra variant on one catalog model: does it merge, and how does it reach the body?
        config.provider ??= {}
        const own = config.provider[provider] ?? {}
        config.provider[provider] = {
          ...own,
          models: { ...own.models, "kimi-for-coding": { variants: { off: { thinking: { type: "disabled" } }, on: { thinking: { type: "enabled" } } } } }
        }
      }
    },
    auth: {
      provider,
      loader: async (getAuth, p) => {
        log("loader", { provider, auth: (await getAuth())?.type ?? null, models: Object.keys(p?.models ?? {}).sort(), options: Object.keys(p?.options ?? {}) })
        return { apiKey: "probe", fetch: fetchFor("loader") }
      },
      methods: [
        {
          type: "oauth",
          label: "Kimi device login",
          authorize: async () => ({
            url: `http://127.0.0.1:9/${provider}`,
            instructions: `Enter code for ${provider}`,
            method: "auto",
            callback: async () => ({ type: "success", refresh: `r-${provider}`, access: `a-${provider}`, expires: Date.now() + 3_600_000 })
          })
        },
        { type: "api", label: "API key" }
      ]
    },
    provider: {
      id: provider,
      models: async (p, ctx) => {
        log("provider.models", { provider, given: Object.keys(p?.models ?? {}).sort(), auth: ctx?.auth?.type ?? null })
        const first = Object.values(p?.models ?? {})[0]
        return { ...(p?.models ?? {}), "probe-extra": { ...(first ?? {}), id: "probe-extra", name: "Probe Extra" } }
      }
    }
  }
}

export const cn = { id: "probe-regions-cn", server: make("kimi-code-plan-cn") }
export const global = { id: "probe-regions-global", server: make("kimi-code-plan-global") }
