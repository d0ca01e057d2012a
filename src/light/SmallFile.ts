/**
 * Reading the package's own small files (the token file, the device id, the
 * refresh marker) without trusting what is found at their path.
 *
 * `readFile` loads whatever is there: a 1 GB sparse `oauth.json` took 1.1 GB
 * of memory and then failed with a misleading "check that it is a file you
 * own"; a named pipe (FIFO) as `device_id` blocked the process forever, deaf
 * to SIGTERM, since the read ran on the main thread. Here the path is checked
 * with `stat` before it is opened, opened non-blocking (a FIFO never blocks
 * the open), checked again on the descriptor, and read up to a cap: a file
 * larger than the cap is reported by its size, never loaded.
 *
 * The text is decoded as other tools write it ({@link decodeFileText}): a
 * UTF-8 or UTF-16 byte order mark, UTF-16 without one, and trailing NUL
 * padding are undone, so a login saved by Notepad or PowerShell loads.
 *
 * Writing them: {@link writeSmallFileSync}, a new private file renamed over
 * the old one, never written through a link and never blocking on a FIFO.
 *
 * Sync `node:fs`, a few system calls, for files of a few KiB.
 *
 * @since 0.2.0
 */
import * as crypto from "node:crypto"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"

/**
 * Largest token file read: two tokens at the 8 KiB cap and every other field
 * fit in a third of this; anything larger is damaged and never loaded.
 */
export const TOKEN_FILE_LIMIT_BYTES = 64 * 1024

/** What was found at a path. */
export type SmallFile =
  /** Nothing there. */
  | { readonly _tag: "Missing" }
  /** A regular file within the cap, as UTF-8 text. */
  | { readonly _tag: "Text"; readonly text: string }
  /** A regular file larger than the cap (its size in bytes); not read. */
  | { readonly _tag: "TooLarge"; readonly bytes: number; readonly limitBytes: number }
  /** Something other than a regular file (a folder, a FIFO, a device, a socket); not read. */
  | { readonly _tag: "NotAFile"; readonly kind: string }

/** The kind tests of a file's stats (`fs.Stats`), named here so the declarations need no Node types. */
export interface FileKind {
  isDirectory(): boolean
  isFIFO(): boolean
  isSocket(): boolean
  isCharacterDevice(): boolean
  isBlockDevice(): boolean
  isSymbolicLink(): boolean
}

/**
 * The parts of a file's stats (`fs.Stats`) the storage checks and the lock read, named here so the declarations
 * need no Node types.
 */
export interface FileStat extends FileKind {
  isFile(): boolean
  readonly uid: number
  readonly mode: number
  readonly size: number
  readonly ino: number
  readonly mtimeMs: number
}

/** What `st` is, in words for a message: "a folder", "a named pipe (FIFO)", … */
export const describeKind = (st: FileKind): string =>
  st.isDirectory()
    ? "a folder"
    : st.isFIFO()
    ? "a named pipe (FIFO)"
    : st.isSocket()
    ? "a socket"
    : st.isCharacterDevice() || st.isBlockDevice()
    ? "a device"
    : st.isSymbolicLink()
    ? "a symbolic link"
    : "not a regular file"

const NONBLOCK = nodeFs.constants.O_NONBLOCK ?? 0
/** `O_NOFOLLOW` where the platform has it (not on Windows, where links need privileges to make). */
const NOFOLLOW = nodeFs.constants.O_NOFOLLOW ?? 0

const zeroes = (b: Uint8Array, from: number, step: number): boolean => {
  for (let i = from; i < b.length; i += step) if (b[i] !== 0) return false
  return true
}

/** UTF-16BE text (an odd last byte is dropped). */
const utf16be = (b: Buffer): string => Buffer.from(b.subarray(0, b.length - (b.length % 2))).swap16().toString("utf16le")

/** `text` without trailing NULs and white space (a loop: a regex here backtracks badly on long runs of spaces). */
const trimEndPadding = (text: string): string => {
  let end = text.length
  while (end > 0) {
    const c = text.charCodeAt(end - 1)
    if (c !== 0 && c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
    end--
  }
  return text.slice(0, end)
}

/** UTF-32 text (after its byte order mark); a code point out of range becomes U+FFFD. */
const utf32 = (b: Buffer, littleEndian: boolean): string => {
  let text = ""
  for (let i = 0; i + 3 < b.length; i += 4) {
    const cp = littleEndian ? b.readUInt32LE(i) : b.readUInt32BE(i)
    text += String.fromCodePoint(cp <= 0x10ffff ? cp : 0xfffd)
  }
  return text
}

/**
 * The text of a small file's bytes, as editors and shells write it: a UTF-8
 * byte order mark is dropped; UTF-32 is decoded after its byte order mark,
 * and UTF-16 (LE or BE) when it starts
 * with its byte order mark, or, without one, when every other byte is zero
 * (ASCII text such as JSON in UTF-16); trailing NUL padding is cut. Anything
 * else is UTF-8 (invalid sequences become U+FFFD, which no token holds, so
 * such a file fails to parse rather than parse wrong). CRLF line ends need no
 * work: JSON and the UUID reader take `\r` as white space.
 */
export const decodeFileText = (bytes: Uint8Array): string => {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let text: string
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0) text = utf32(b.subarray(4), true)
  else if (b.length >= 4 && b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff) text = utf32(b.subarray(4), false)
  else if (b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) text = b.subarray(3).toString("utf8")
  else if (b.length >= 2 && b[0] === 0xff && b[1] === 0xfe) text = b.subarray(2).toString("utf16le")
  else if (b.length >= 2 && b[0] === 0xfe && b[1] === 0xff) text = utf16be(b.subarray(2))
  else if (b.length >= 4 && b.length % 2 === 0 && b[0] !== 0 && zeroes(b, 1, 2)) text = b.toString("utf16le")
  else if (b.length >= 4 && b.length % 2 === 0 && b[1] !== 0 && zeroes(b, 0, 2)) text = utf16be(b)
  else text = b.toString("utf8")
  return trimEndPadding(text)
}

/** `lstat` of `p` (the link itself, never followed), or `undefined` when nothing is there; any other error is thrown. */
export const lstatOrMissing = (p: string): FileStat | undefined => {
  try {
    return nodeFs.lstatSync(p)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw e
  }
}

/**
 * Reads `file` when it is a regular file of at most `maxBytes`. Never blocks
 * on a FIFO or device and never allocates more than `maxBytes + 1`. Links are
 * followed unless `noFollow` (then a link is `NotAFile`, "a symbolic link",
 * its target never opened). The text is decoded by {@link decodeFileText}.
 * Errors other than a missing file (`EACCES`, `EIO`, …) are thrown as the
 * `node:fs` error.
 */
export const readSmallFileSync = (file: string, maxBytes: number, options?: { readonly noFollow?: boolean }): SmallFile => {
  const noFollow = options?.noFollow === true
  let before: nodeFs.Stats
  try {
    before = noFollow ? nodeFs.lstatSync(file) : nodeFs.statSync(file)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { _tag: "Missing" }
    throw e
  }
  if (!before.isFile()) return { _tag: "NotAFile", kind: describeKind(before) }
  if (before.size > maxBytes) return { _tag: "TooLarge", bytes: before.size, limitBytes: maxBytes }
  let fd: number
  try {
    fd = nodeFs.openSync(file, nodeFs.constants.O_RDONLY | NONBLOCK | (noFollow ? NOFOLLOW : 0))
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code === "ENOENT") return { _tag: "Missing" }
    // Replaced by a link between the lstat and the open.
    if (noFollow && code === "ELOOP") return { _tag: "NotAFile", kind: "a symbolic link" }
    throw e
  }
  try {
    // Replaced between the stat and the open: judge what was opened.
    const st = nodeFs.fstatSync(fd)
    if (!st.isFile()) return { _tag: "NotAFile", kind: describeKind(st) }
    if (st.size > maxBytes) return { _tag: "TooLarge", bytes: st.size, limitBytes: maxBytes }
    const buffer = Buffer.alloc(maxBytes + 1)
    let length = 0
    while (length < buffer.length) {
      const n = nodeFs.readSync(fd, buffer, length, buffer.length - length, null)
      if (n === 0) break
      length += n
    }
    // Grew while read: still too large, and never loaded.
    if (length > maxBytes) return { _tag: "TooLarge", bytes: Math.max(length, st.size), limitBytes: maxBytes }
    return { _tag: "Text", text: decodeFileText(buffer.subarray(0, length)) }
  } finally {
    nodeFs.closeSync(fd)
  }
}

/** Size in words: `1.0 GiB`, `300 KiB`, `12 bytes`. */
export const describeSize = (bytes: number): string =>
  bytes >= 1024 ** 3
    ? `${(bytes / 1024 ** 3).toFixed(1)} GiB`
    : bytes >= 1024 ** 2
    ? `${(bytes / 1024 ** 2).toFixed(1)} MiB`
    : bytes >= 1024
    ? `${Math.round(bytes / 1024)} KiB`
    : `${bytes} bytes`

/**
 * Replaces `file` with `text` atomically: written to a new, randomly named
 * 0600 file beside it (`wx`, so a planted link or file at that name is never
 * written through), fsynced, then renamed over `file`. The rename never opens
 * what is at `file`: a link there is replaced, not followed, and a FIFO never
 * blocks it. An empty folder at `file` is removed first (it holds nothing);
 * a folder with something in it stays, and the rename fails (`EISDIR`). The
 * temporary file is removed on failure, and the error is thrown.
 */
export const writeSmallFileSync = (file: string, text: string): void => {
  const tmp = nodePath.join(
    nodePath.dirname(file),
    `.${nodePath.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString("hex")}.tmp`
  )
  const fd = nodeFs.openSync(tmp, "wx", 0o600)
  try {
    nodeFs.writeFileSync(fd, text)
    nodeFs.fsyncSync(fd)
  } catch (e) {
    nodeFs.closeSync(fd)
    nodeFs.rmSync(tmp, { force: true })
    throw e
  }
  nodeFs.closeSync(fd)
  try {
    renameOver(tmp, file)
  } catch (e) {
    nodeFs.rmSync(tmp, { force: true })
    throw e
  }
}

/** `rename(tmp, file)`; when `file` is a folder, once more after removing it if it is empty. */
const renameOver = (tmp: string, file: string): void => {
  try {
    nodeFs.renameSync(tmp, file)
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    if (code !== "EISDIR" && code !== "ENOTEMPTY" && code !== "EEXIST" && code !== "EPERM") throw e
    if (!removeEmptyFolderSync(file)) throw e
    nodeFs.renameSync(tmp, file)
  }
}

/** Removes `p` when it is an empty folder (not a link to one); whether it did. Never throws. */
const removeEmptyFolderSync = (p: string): boolean => {
  try {
    if (!nodeFs.lstatSync(p).isDirectory()) return false
    nodeFs.rmdirSync(p)
    return true
  } catch {
    return false
  }
}

/**
 * Removes the small file at `p` without following anything: a file, a link
 * (the link, never its target), a FIFO or socket, or an empty folder.
 * Whether something was removed; a folder with something in it is left and
 * reported as `false`, as is a missing path. Never throws.
 */
export const removeSmallFileSync = (p: string): boolean => {
  try {
    nodeFs.unlinkSync(p)
    return true
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return code === "EISDIR" || code === "EPERM" ? removeEmptyFolderSync(p) : false
  }
}
