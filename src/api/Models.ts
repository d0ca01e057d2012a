/**
 * The account's models as Kimi serves them at `GET {API base}/models`,
 * decoded leniently: the one decoder behind the Effect `KimiApi.models` and
 * the OpenCode plugin's list of the account's own models.
 *
 * An entry without a non-empty `id`, or that is not an object, is skipped;
 * any other field of the wrong type is dropped (not fatal); an empty
 * `display_name` and a `context_length` that is not a positive number count
 * as unsent. Only a body without a `data` array fails.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const lenient = <S extends Schema.Top>(schema: S) =>
  Schema.optionalKey(schema.pipe(Schema.catchDecoding(() => Effect.succeedNone)))

const ModelJson = Schema.Struct({
  id: Schema.NonEmptyString,
  display_name: lenient(Schema.String),
  context_length: lenient(Schema.Finite),
  supports_reasoning: lenient(Schema.Boolean),
  supports_image_in: lenient(Schema.Boolean),
  supports_video_in: lenient(Schema.Boolean),
  supports_tool_use: lenient(Schema.Boolean),
  supports_thinking_type: lenient(Schema.String)
})

const ModelsJson = Schema.Struct({ data: Schema.Array(Schema.Unknown) })

/** A model the account may use, as `/models` describes it. */
export interface KimiModel {
  readonly id: string
  readonly displayName: string | undefined
  readonly contextLength: number | undefined
  readonly supportsReasoning: boolean | undefined
  readonly supportsImageIn: boolean | undefined
  readonly supportsVideoIn: boolean | undefined
  readonly supportsToolUse: boolean | undefined
  /** `only`, `both` or `no`, when Kimi says it. */
  readonly supportsThinkingType: string | undefined
}

const decodeModel = Schema.decodeUnknownOption(ModelJson)

/** Decodes a `/models` body: entries without an id are skipped; `None` without a `data` array. Pure. */
export const decodeModels = (body: unknown): Option.Option<ReadonlyArray<KimiModel>> =>
  Option.map(Schema.decodeUnknownOption(ModelsJson)(body), ({ data }) =>
    data.flatMap((raw) => {
      const m = decodeModel(raw)
      if (Option.isNone(m)) return []
      const v = m.value
      return [{
        id: v.id,
        displayName: v.display_name === "" ? undefined : v.display_name,
        contextLength: v.context_length !== undefined && v.context_length > 0 ? v.context_length : undefined,
        supportsReasoning: v.supports_reasoning,
        supportsImageIn: v.supports_image_in,
        supportsVideoIn: v.supports_video_in,
        supportsToolUse: v.supports_tool_use,
        supportsThinkingType: v.supports_thinking_type
      }]
    }))
