/**
 * The runtime bootstrap every edge shares: the plugin's core, the promise
 * facade and the AI SDK provider each run the core's Effects in one managed
 * runtime over {@link layerNode}, with logging chosen for their host; the CLI
 * takes the same logging layer for its one-shot runs.
 *
 * - Logging: `DEBUG` ({@link debugFromEnv}) turns debug logs on stderr on in
 *   every edge; otherwise the CLI logs warnings on stderr, a host UI (the
 *   OpenCode plugin, the AI SDK) is silent, and the facade keeps Effect's
 *   default logger.
 * - A run resolves its `Exit` and never rejects: a failure to build the
 *   runtime (a defect) comes back as `Exit.die`.
 * - The runtime is built on the first run; `dispose` releases it (the
 *   background refresher with it), and a later run builds a new one.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as References from "effect/References"
import { type KimiAuthLayerOptions, type KimiAuthServices, layerNode } from "../KimiAuth.js"
import { debugFromEnv } from "../light/Debug.js"

/** How an edge's host wants logs: on stderr (the CLI), none (a host UI), or Effect's default (a library). */
export type EdgeLogging = "stderr" | "silent" | "default"

/**
 * The logging layer of an edge: debug logs on stderr when `debug`, else
 * by `logging`: warnings and errors on stderr, nothing, or Effect's default.
 */
export const edgeLoggingLayer = (logging: EdgeLogging, debug: boolean): Layer.Layer<never> =>
  debug || logging === "stderr"
    ? Layer.mergeAll(
      Layer.succeed(Logger.LogToStderr, true),
      Layer.succeed(References.MinimumLogLevel, debug ? "Debug" : "Warn")
    )
    : logging === "silent"
    ? Logger.layer([])
    : Layer.empty

/** An edge's runtime: runs the core's Effects, resolving their `Exit`. */
export interface EdgeRuntime {
  /** Runs `effect`; resolves its `Exit` (interrupted when `signal` aborts), never rejects. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, KimiAuthServices>, signal?: AbortSignal) => Promise<Exit.Exit<A, E | unknown>>
  /** Releases the runtime, if built. A later {@link EdgeRuntime.run} builds a new one. */
  readonly dispose: () => Promise<void>
}

/** The one edge runtime bootstrap: {@link layerNode} of `options` with the edge's logging, built on first run. */
export const makeEdgeRuntime = (options: KimiAuthLayerOptions, logging: EdgeLogging): EdgeRuntime => {
  let runtime: ManagedRuntime.ManagedRuntime<KimiAuthServices, unknown> | undefined
  return {
    run: (effect, signal) =>
      (runtime ??= ManagedRuntime.make(layerNode(options).pipe(Layer.provideMerge(edgeLoggingLayer(logging, debugFromEnv())))))
        .runPromiseExit(effect, signal ? { signal } : undefined)
        .catch((e: unknown) => Exit.die(e)),
    dispose: async () => {
      const built = runtime
      runtime = undefined
      await built?.dispose().catch(() => {})
    }
  }
}
