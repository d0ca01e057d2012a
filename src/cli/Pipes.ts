/**
 * Standard streams whose reader leaves early. Effect-free: the executable's
 * thin entry (`main.ts`) installs it before the fast path of `kimi-auth token`.
 *
 * @since 0.2.0
 */

/** The standard streams whose reader went away (EPIPE) or that failed: nothing more is written to them. */
const gone = new Set<NodeJS.WriteStream>()

/**
 * Makes a reader that leaves early (`kimi-auth status | head -1`) a non-event:
 * the first failed write (EPIPE, or any other stream error) marks the stream
 * gone, the rest of its output is dropped quietly, and the command goes on to
 * its end and exits with its own code, as if the output had been read. Node
 * ignores SIGPIPE, so without this the failed write is an uncaught error: a
 * stack and exit 1. Finishing instead of exiting at once (as a process killed
 * by SIGPIPE would, 141) keeps a refresh in flight from being cut between
 * Kimi's rotation and the save. Call once, before anything is written.
 */
export const quietBrokenPipes = (): void => {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", () => void gone.add(stream))
  }
}

/** Writes `text` to `stream` unless its reader has gone; never throws. */
export const write = (stream: NodeJS.WriteStream, text: string) => {
  if (gone.has(stream)) return
  try {
    stream.write(text)
  } catch {
    gone.add(stream)
  }
}

