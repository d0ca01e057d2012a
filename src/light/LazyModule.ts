/**
 * The edges' lazy core import: a module loaded once, on first need, by a
 * dynamic `import()` written at the caller (so bundlers still split it off
 * into its own chunk). Both OpenCode plugins load their Effect core with it.
 * Effect-free.
 *
 * @since 0.2.0
 */

/**
 * A module loaded once, on first need, by a dynamic `import()` written at the
 * caller (so bundlers still split it off): the edges' lazy core import. A
 * failed load is forgotten, so the next call tries again.
 */
export const lazyModule = <M>(load: () => Promise<M>): () => Promise<M> => {
  let loading: Promise<M> | undefined
  return () =>
    (loading ??= load().catch((e: unknown) => {
      loading = undefined
      throw e
    }))
}
