/**
 * Standard streams whose reader leaves early. Effect-free: the executable's
 * thin entry (`main.ts`) installs it before the fast path of `kimi-auth token`.
 *
 * @since 0.2.0
 */

/**
 * Makes a reader that leaves early (`kimi-auth status | head -1`) a non-event:
 * after the first failed write (EPIPE, or any other stream error) Node has
 * destroyed the stream, the rest of its output is dropped quietly, and the command goes on to
 * its end and exits with its own code, as if the output had been read. Node
 * ignores SIGPIPE, so without this the failed write is an uncaught error: a
 * stack and exit 1. Finishing instead of exiting at once (as a process killed
 * by SIGPIPE would, 141) keeps a refresh in flight from being cut between
 * Kimi's rotation and the save. Call once, before anything is written.
 */
export const quietBrokenPipes = (): void => {
  for (const stream of [process.stdout, process.stderr]) {
    // Node destroys the stream after the failed write; `write` below then skips it. (No shared state: the
    // executable and the bundled command line each inline this module.)
    stream.on("error", () => {})
  }
}

/** Writes `text` to `stream` unless its reader has gone; never throws. */
export const write = (stream: NodeJS.WriteStream, text: string): void => {
  if (stream.destroyed || !stream.writable) return
  try {
    stream.write(text)
  } catch {
    // A stream that throws instead of emitting: the same as gone.
  }
}

