/**
 * Names a failed file operation the way the OS does (`ENOSPC`, `EACCES`, …):
 * Effect's platform errors file a full disk under the generic reason
 * "Unknown", which tells a person nothing.
 *
 * @since 0.1.0
 */
import type * as PlatformError from "effect/PlatformError"

/**
 * The OS's name for a platform error (`ENOSPC`, `EACCES`, …) and a few words,
 * instead of Effect's generic reason tag ("Unknown" for a full disk).
 */
export const describeError = (e: PlatformError.PlatformError): string => {
  const cause = (e.reason as { readonly cause?: unknown }).cause as NodeJS.ErrnoException | undefined
  const code = typeof cause?.code === "string" ? cause.code : undefined
  if (code === undefined) return e.reason._tag
  const words: Record<string, string> = {
    ENOSPC: "no space left on the disk",
    EDQUOT: "disk quota exceeded",
    EROFS: "read-only file system",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EIO: "input/output error",
    ENOENT: "no such file or folder",
    ELOOP: "a symbolic link where none is allowed"
  }
  return words[code] ? `${code}: ${words[code]}` : code
}
