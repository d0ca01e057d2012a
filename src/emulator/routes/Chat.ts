/**
 * The emulator's `POST /coding/v1/chat/completions`: a JSON body with a known
 * model and messages, checked against the quota (Kimi's refusals once a window
 * is used up), then answered whole or streamed as SSE, with
 * `reasoning_content` first when thinking is on (as Kimi streams it), paced
 * by `chunkDelayMillis` when a slow model is asked for.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as Stream from "effect/Stream"
import { findModel, MODELS, reasoningText, thinkingOf } from "../Models.js"
import { withBearer } from "./Api.js"
import { apiError, mediaType, type MutableRecord, realDelay, type RouteDeps } from "./Shared.js"

/** The start of every chat answer. */
export const GREETING = "Hello from the Kimi emulator"

const messageText = (content: unknown): string => {
  if (typeof content === "string") return content
  if (Array.isArray(content)) {
    return content
      .map((p: unknown) =>
        typeof p === "object" && p !== null && "text" in p && typeof p.text === "string" ? p.text : ""
      )
      .join("")
  }
  return ""
}

const invalid = (rec: MutableRecord, message: string) => {
  rec.error = "invalid_request_error"
  return apiError(400, "invalid_request_error", message)
}

/** What one answer is made of. */
interface Completion {
  readonly id: string
  readonly created: number
  readonly model: string
  readonly text: string
  readonly reasoning: string | undefined
  readonly usage: { readonly prompt_tokens: number; readonly completion_tokens: number; readonly total_tokens: number }
}

const wholeAnswer = (c: Completion) =>
  HttpServerResponse.jsonUnsafe({
    id: c.id,
    object: "chat.completion",
    created: c.created,
    model: c.model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: c.text, ...(c.reasoning === undefined ? {} : { reasoning_content: c.reasoning }) },
      finish_reason: "stop"
    }],
    usage: c.usage
  })

const streamedAnswer = (c: Completion, includeUsage: boolean, chunkDelayMillis: number) => {
  const chunk = (choices: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id: c.id, object: "chat.completion.chunk", created: c.created, model: c.model, choices, ...extra })}\n\n`
  const words = (s: string) => s.match(/\S+\s*/g) ?? [s]
  const events = [
    // With thinking, Kimi streams delta.reasoning_content first, then the answer in delta.content.
    ...(c.reasoning === undefined
      ? [chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }])]
      : [
        chunk([{ index: 0, delta: { role: "assistant", reasoning_content: "" }, finish_reason: null }]),
        ...words(c.reasoning).map((p) => chunk([{ index: 0, delta: { reasoning_content: p }, finish_reason: null }]))
      ]),
    ...words(c.text).map((p) => chunk([{ index: 0, delta: { content: p }, finish_reason: null }])),
    chunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
    ...(includeUsage ? [chunk([], { usage: c.usage })] : []),
    "data: [DONE]\n\n"
  ]
  const paced = chunkDelayMillis > 0
    ? Stream.fromIterable(events).pipe(Stream.mapEffect((e, i) => i === 0 ? Effect.succeed(e) : Effect.as(realDelay(chunkDelayMillis), e)))
    : Stream.fromIterable(events)
  return HttpServerResponse.stream(paced.pipe(Stream.encodeText), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache" }
  })
}

/** The completion of a valid request: the greeting, what the user said, and reasoning when thinking is on. */
const completionOf = (id: string, created: number, modelId: string, req: Record<string, unknown>, messages: ReadonlyArray<unknown>): Completion => {
  const thinking = thinkingOf(modelId, req)
  const lastUser = [...messages].reverse().find((m: unknown) =>
    typeof m === "object" && m !== null && "role" in m && m.role === "user"
  ) as { content?: unknown } | undefined
  const said = messageText(lastUser?.content).replace(/\s+/g, " ").trim().slice(0, 200)
  const text = said === "" ? `${GREETING}.` : `${GREETING}. You said: ${said}`
  const reasoning = thinking.enabled ? reasoningText(said, thinking.effort) : undefined
  const promptTokens = JSON.stringify(messages).length >> 2
  const completionTokens = text.split(" ").length + (reasoning?.split(" ").length ?? 0)
  return {
    id,
    created,
    model: modelId,
    text,
    reasoning,
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens }
  }
}

/** `POST /coding/v1/chat/completions`. */
export const chatRoutes = ({ chunkDelayMillis, state, quota }: RouteDeps) => {
  let completionSeq = 0
  const chat = withBearer(state)((rec) => {
    const body = rec.json
    if (mediaType(rec.contentType) !== "application/json" || typeof body !== "object" || body === null) {
      return invalid(rec, "The request body must be a JSON object.")
    }
    const req = body as Record<string, unknown>
    const messages = req["messages"]
    if (!Array.isArray(messages) || messages.length === 0) return invalid(rec, "messages must be a non-empty array.")
    const model = findModel(req["model"])
    if (model === undefined) {
      return invalid(rec, `Unknown model ${JSON.stringify(req["model"])}; use one of ${MODELS.map((m) => m.id).join(", ")}.`)
    }
    const refusal = quota.refusalFor(state.settings.now())
    if (refusal !== undefined) {
      rec.error = refusal.type
      let response = apiError(refusal.status, refusal.type, refusal.message)
      for (const [k, v] of Object.entries(refusal.headers)) response = HttpServerResponse.setHeader(response, k, v)
      return response
    }
    quota.count(state.settings.now())
    const c = completionOf(`chatcmpl-emu-${++completionSeq}`, Math.floor(state.settings.now() / 1000), model.id, req, messages)
    if (req["stream"] !== true) return wholeAnswer(c)
    const options = req["stream_options"]
    const includeUsage = typeof options === "object" && options !== null &&
      (options as Record<string, unknown>)["include_usage"] === true
    return streamedAnswer(c, includeUsage, chunkDelayMillis())
  })
  return [HttpRouter.route("POST", "/coding/v1/chat/completions", chat)]
}
