/**
 * A small typed Kimi For Coding API as an Effect service: the account's
 * models, its quota (`/usages`), and a chat completion, whole or streamed as
 * deltas (`reasoning_content` included). Every request goes through
 * {@link KimiHttpClient}, so it is authorized, healed once on a `401`, and
 * fails with typed errors. Answers are decoded leniently with `effect/Schema`:
 * unknown fields are ignored, optional ones may be missing.
 *
 * ```ts
 * const program = Effect.gen(function*() {
 *   const kimi = yield* KimiApi
 *   const models = yield* kimi.models
 *   yield* kimi.chatStream({ model: models[0].id, messages: [{ role: "user", content: "Hi" }] }).pipe(
 *     Stream.runForEach((d) => Effect.sync(() => process.stdout.write(d.content ?? "")))
 *   )
 * }).pipe(Effect.provide(KimiApi.layerNode()))
 * ```
 *
 * @since 0.2.0
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type * as HttpClientError from "effect/http/HttpClientError"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import type * as HttpClientResponse from "effect/http/HttpClientResponse"
import { KimiApiError, type QuotaExceededError, RateLimitedError } from "./ApiErrors.js"
import { proxyNote } from "../net/EnvFetch.js"
import { excerpt, NetworkError } from "../Errors.js"
import { API_BODY_LIMIT_BYTES, readTextCapped, readTextPrefix } from "../net/HttpBody.js"
import { KimiAuthConfig } from "../config/KimiAuthConfig.js"
import { type KimiAuthLayerOptions, type KimiAuthServices, layerFetchHttpClient } from "../KimiAuth.js"
import {
  apiBaseFor,
  KimiHttpClient,
  type KimiRequestError,
  layer as kimiHttpLayer,
  layerNode as kimiHttpLayerNode
} from "../request/KimiHttpClient.js"
import { retryAfterMillis } from "../request/Authorize.js"
import { type TokenError, TokenManager } from "../tokens/TokenManager.js"
import { decodeModels, type KimiModel } from "./Models.js"
import { decodeUsage, type KimiUsage } from "./Usage.js"
import { USAGES_PATH } from "./UsageReader.js"

/** Every way a Kimi API call can fail. */
export type KimiApiFailure = TokenError | QuotaExceededError | RateLimitedError | KimiApiError

/** Body cap of a whole (not streamed) chat answer; `/models` and `/usages` use `HttpBody.API_BODY_LIMIT_BYTES`. */
export const CHAT_BODY_LIMIT_BYTES = 16 * 1024 * 1024

// ---------------------------------------------------------------------------
// Models

const lenient = <S extends Schema.Top>(schema: S) =>
  Schema.optionalKey(schema.pipe(Schema.catchDecoding(() => Effect.succeedNone)))

// The one `/models` decoder lives in Models.ts; re-exported here, where it was first published.
export { decodeModels, type KimiModel } from "./Models.js"

// ---------------------------------------------------------------------------
// Chat

/** One message of a conversation. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant" | "tool"
  readonly content: string
  /** An assistant message's reasoning, sent back with the history when thinking is on. */
  readonly reasoning_content?: string | undefined
}

/** A chat completion request. */
export interface ChatRequest {
  readonly model: string
  readonly messages: ReadonlyArray<ChatMessage>
  /** Kimi's thinking switch, sent as `thinking: { type: "enabled" | "disabled" }`; omitted: the model's default. */
  readonly thinking?: boolean | undefined
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  /** More body fields, sent as given (e.g. `tools`). */
  readonly extra?: Readonly<Record<string, unknown>> | undefined
}

/** Token counts of a completion. */
export interface ChatUsage {
  readonly promptTokens: number | undefined
  readonly completionTokens: number | undefined
  readonly totalTokens: number | undefined
}

/** A whole completion. */
export interface ChatCompletion {
  readonly id: string | undefined
  readonly model: string | undefined
  readonly content: string
  readonly reasoningContent: string | undefined
  readonly finishReason: string | undefined
  readonly usage: ChatUsage | undefined
}

/** One streamed piece: text, reasoning, the end, or the final token counts. */
export interface ChatDelta {
  readonly content: string | undefined
  /** Reasoning text (`delta.reasoning_content`); an empty string is still reasoning. */
  readonly reasoningContent: string | undefined
  readonly finishReason: string | undefined
  readonly usage: ChatUsage | undefined
}

const UsageJson = Schema.Struct({
  prompt_tokens: lenient(Schema.Finite),
  completion_tokens: lenient(Schema.Finite),
  total_tokens: lenient(Schema.Finite)
})

const Text = Schema.NullOr(Schema.String)

const CompletionJson = Schema.Struct({
  id: lenient(Schema.String),
  model: lenient(Schema.String),
  choices: Schema.Array(Schema.Struct({
    message: Schema.Struct({ content: lenient(Text), reasoning_content: lenient(Text) }),
    finish_reason: lenient(Text)
  })),
  usage: lenient(UsageJson)
})

const ChunkJson = Schema.Struct({
  choices: lenient(Schema.Array(Schema.Struct({
    delta: lenient(Schema.Struct({ content: lenient(Text), reasoning_content: lenient(Text) })),
    finish_reason: lenient(Text)
  }))),
  usage: lenient(Schema.NullOr(UsageJson))
})

const toUsage = (u: typeof UsageJson.Type | null | undefined): ChatUsage | undefined =>
  u == null ? undefined : {
    promptTokens: u.prompt_tokens,
    completionTokens: u.completion_tokens,
    totalTokens: u.total_tokens
  }

/** The request body Kimi expects. Pure. */
export const chatBody = (request: ChatRequest, stream: boolean): Record<string, unknown> => ({
  ...request.extra,
  model: request.model,
  messages: request.messages,
  stream,
  ...(stream ? { stream_options: { include_usage: true } } : {}),
  ...(request.thinking === undefined ? {} : { thinking: { type: request.thinking ? "enabled" : "disabled" } }),
  ...(request.maxTokens === undefined ? {} : { max_tokens: request.maxTokens }),
  ...(request.temperature === undefined ? {} : { temperature: request.temperature })
})

const decodeChunk = Schema.decodeUnknownOption(ChunkJson)

/** The deltas of one SSE line (`data: {...}`); none for comments, other fields and `[DONE]`. Pure. */
export const deltasOfLine = (line: string): ReadonlyArray<ChatDelta> => {
  if (!line.startsWith("data:")) return []
  const data = line.slice(5).trim()
  if (data === "" || data === "[DONE]") return []
  let json: unknown
  try {
    json = JSON.parse(data)
  } catch {
    return []
  }
  const chunk = decodeChunk(json)
  if (Option.isNone(chunk)) return []
  const out: Array<ChatDelta> = []
  for (const c of chunk.value.choices ?? []) {
    const content = c.delta?.content ?? undefined
    const reasoningContent = c.delta?.reasoning_content ?? undefined
    const finishReason = c.finish_reason ?? undefined
    if (content !== undefined || reasoningContent !== undefined || finishReason !== undefined) {
      out.push({ content, reasoningContent, finishReason, usage: undefined })
    }
  }
  const usage = toUsage(chunk.value.usage)
  if (usage !== undefined) out.push({ content: undefined, reasoningContent: undefined, finishReason: undefined, usage })
  return out
}

// ---------------------------------------------------------------------------
// The service

/** The Kimi API service. */
export interface KimiApiShape {
  /** The account's models (`GET /models`). */
  readonly models: Effect.Effect<ReadonlyArray<KimiModel>, KimiApiFailure>
  /** The plan's quota (`GET /usages`), either shape, normalised (`KimiUsage.shape` says which: see `UsageModel.ts`). */
  readonly usage: Effect.Effect<KimiUsage, KimiApiFailure>
  /** One whole completion (`POST /chat/completions`). */
  readonly chat: (request: ChatRequest) => Effect.Effect<ChatCompletion, KimiApiFailure>
  /** A streamed completion: deltas as they arrive, reasoning included. */
  readonly chatStream: (request: ChatRequest) => Stream.Stream<ChatDelta, KimiApiFailure>
}

/** A failure of the transport (no answer) as the `NetworkError` a person can act on; typed failures pass. */
const liftError = (url: string) => (e: HttpClientError.HttpClientError | KimiRequestError): KimiApiFailure =>
  e._tag === "HttpClientError"
    ? new NetworkError({
      url,
      message: `Could not reach the Kimi API at ${url}${proxyNote(e.reason.cause, url)}: ${e.reason._tag}. Check the network${
        proxyNote(e.reason.cause, url) === "" ? "" : " and the proxy settings (HTTPS_PROXY, NO_PROXY)"
      }.`,
      cause: e
    })
    : e

/** A body read whole (capped at `limitBytes`) and parsed as JSON. */
const readJson = (url: string, response: HttpClientResponse.HttpClientResponse, limitBytes = API_BODY_LIMIT_BYTES) =>
  readTextCapped(response, limitBytes).pipe(
    Effect.mapError((e) =>
      e._tag === "BodyTooLargeError"
        ? new KimiApiError({ url, status: response.status, excerpt: "", message: `${e.message} (${url})` })
        : liftError(url)(e)
    ),
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: () =>
          new KimiApiError({ url, status: 200, excerpt: excerpt(text), message: `The Kimi API sent something that is not JSON from ${url}.` })
      })
    )
  )

const undecodable = (url: string, what: string) =>
  new KimiApiError({ url, status: 200, excerpt: "", message: `The Kimi API's ${what} answer from ${url} could not be read.` })

/** A refused answer (any status but 200) as its typed error: a rate limit, or the status with a token-free excerpt. */
const refusal = (url: string, path: string, response: HttpClientResponse.HttpClientResponse) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const text = yield* readTextPrefix(response, 8192).pipe(Effect.orElseSucceed(() => ""))
    if (response.status === 429) {
      return yield* new RateLimitedError({
        url,
        retryAfterMillis: retryAfterMillis(response.headers["retry-after"], now),
        message: `Kimi is rate limiting requests (429): ${excerpt(text)}. Wait a moment and try again.`
      })
    }
    return yield* new KimiApiError({
      url,
      status: response.status,
      excerpt: excerpt(text),
      message: `The Kimi API answered ${response.status} to ${path}: ${excerpt(text)}`
    })
  })

/** A decoded completion as the service answers it. */
const completionOf = (c: typeof CompletionJson.Type): ChatCompletion => {
  const first = c.choices[0]!
  return {
    id: c.id,
    model: c.model,
    content: first.message.content ?? "",
    reasoningContent: first.message.reasoning_content ?? undefined,
    finishReason: first.finish_reason ?? undefined,
    usage: toUsage(c.usage)
  }
}

/** Makes the service over {@link KimiHttpClient}. */
export const make = Effect.gen(function*() {
  const client = yield* KimiHttpClient
  const settings = yield* KimiAuthConfig
  const manager = yield* TokenManager
  // The login's region decides the base (unless pinned): the manager's token set, cached in memory, says which.
  // Without a usable login this already fails with the typed error the request would have met.
  const base = Effect.map(manager.getTokens, (tokens) => apiBaseFor(settings, tokens))

  /** Sends, then turns any status but 200 into a typed error. */
  const send = (path: string, build: (url: string) => HttpClientRequest.HttpClientRequest) =>
    Effect.gen(function*() {
      const url = `${yield* base}${path}`
      const response = yield* client.execute(build(url)).pipe(Effect.mapError(liftError(url)))
      if (response.status === 200) return { url, response }
      return yield* refusal(url, path, response)
    })
  const get = (path: string) => send(path, (url) => HttpClientRequest.acceptJson(HttpClientRequest.get(url)))
  const post = (request: ChatRequest, stream: boolean) =>
    send("/chat/completions", (url) =>
      HttpClientRequest.post(url).pipe(
        HttpClientRequest.acceptJson,
        HttpClientRequest.bodyJsonUnsafe(chatBody(request, stream))
      ))

  const models = Effect.gen(function*() {
    const { url, response } = yield* get("/models")
    const decoded = decodeModels(yield* readJson(url, response))
    if (Option.isNone(decoded)) return yield* undecodable(url, "/models")
    return decoded.value
  }).pipe(Effect.withSpan("KimiApi.models"))

  const usage = Effect.gen(function*() {
    const { url, response } = yield* get(USAGES_PATH)
    const decoded = decodeUsage(yield* readJson(url, response))
    if (decoded._tag === "Failure") return yield* undecodable(url, USAGES_PATH)
    return decoded.success
  }).pipe(Effect.withSpan("KimiApi.usage"))

  const chat = (request: ChatRequest) =>
    Effect.gen(function*() {
      const { url, response } = yield* post(request, false)
      const decoded = Schema.decodeUnknownOption(CompletionJson)(yield* readJson(url, response, CHAT_BODY_LIMIT_BYTES))
      if (Option.isNone(decoded) || decoded.value.choices.length === 0) return yield* undecodable(url, "chat completion")
      return completionOf(decoded.value)
    }).pipe(Effect.withSpan("KimiApi.chat"))

  const chatStream = (request: ChatRequest): Stream.Stream<ChatDelta, KimiApiFailure> =>
    Stream.unwrap(Effect.map(post(request, true), ({ url, response }) =>
      response.stream.pipe(
        Stream.mapError(liftError(url)),
        Stream.decodeText,
        Stream.splitLines,
        Stream.takeWhile((line) => line.trim() !== "data: [DONE]"),
        Stream.map(deltasOfLine),
        Stream.flattenIterable
      )))

  return { models, usage, chat, chatStream } satisfies KimiApiShape
})

/** The Kimi API service. */
export class KimiApi extends Context.Service<KimiApi, KimiApiShape>()("opencode-kimi-auth/KimiApi") {
  /** Over {@link KimiHttpClient} and the configuration. */
  static readonly layer: Layer.Layer<KimiApi, never, KimiHttpClient | KimiAuthConfig | TokenManager> = Layer.effect(
    KimiApi,
    make
  )

  /**
   * Over the `KimiAuth` services already provided (a runtime built from
   * `KimiAuth.layerNode`), with the platform's fetch client underneath.
   */
  static readonly layerFromAuth: Layer.Layer<KimiApi, never, KimiAuthServices> = KimiApi.layer.pipe(
    Layer.provide(kimiHttpLayer),
    Layer.provide(layerFetchHttpClient)
  )

  /** Batteries included for Node and Bun: every service of `KimiHttpClient.layerNode` plus this one. */
  static readonly layerNode = (options: KimiAuthLayerOptions = {}) =>
    KimiApi.layer.pipe(Layer.provideMerge(kimiHttpLayerNode(options)))
}
