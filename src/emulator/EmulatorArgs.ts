/**
 * Command-line flags of the emulator, parsed from plain `process.argv`
 * (used by `main.ts`; the `kimi-auth emulator` command may reuse it).
 *
 * @since 0.1.0
 */
import type { EmulatorOptions } from "./KimiEmulator.js"

/** Help text listing every flag. */
export const USAGE = `Usage: kimi-emulator [flags]
  --port N                 port (default 0: any free port)
  --host H                 interface (default 127.0.0.1)
  --auto-approve [MS]      approve each login MS ms after it starts (default 0 when given without MS)
  --interval S             polling interval in seconds (default 5)
  --access-token-ttl S     access-token lifetime in seconds (default 900)
  --device-code-ttl S      device-code lifetime in seconds (default 900)
  --client-id ID           accepted client id (default: Kimi's public client id)
  --error-rate R           share of requests answered 5xx (0..1)
  --drop-rate R            share of connections dropped (0..1)
  --rate-limit-rate R      share of requests answered 429 (0..1)
  --retry-after S          Retry-After of 429 answers (default 1)
  --latency MS             delay added to each request
  --fault-paths P1,P2      paths the faults apply to (default /api/oauth,/coding/v1)
  --seed N                 make the faults deterministic
  --help                   show this help`

/** A flag was wrong; the message says which. */
export class EmulatorArgsError extends Error {
  override readonly name = "EmulatorArgsError"
}

/** Parses flags into options. Throws {@link EmulatorArgsError}; returns `"help"` for `--help`. */
export const parseEmulatorArgs = (argv: ReadonlyArray<string>): EmulatorOptions | "help" => {
  const out: Record<string, unknown> = {}
  const faults: Record<string, unknown> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined]
    const value = (): string => {
      if (inline !== undefined) return inline
      const next = argv[i + 1]
      if (next === undefined || next.startsWith("--")) throw new EmulatorArgsError(`${flag} needs a value`)
      i++
      return next
    }
    const num = (): number => {
      const raw = value()
      const n = Number(raw)
      if (raw.trim() === "" || !Number.isFinite(n) || n < 0) {
        throw new EmulatorArgsError(`${flag} needs a non-negative number, got "${raw}"`)
      }
      return n
    }
    switch (flag) {
      case "--help":
      case "-h":
        return "help"
      case "--port":
        out["port"] = num()
        break
      case "--host":
        out["host"] = value()
        break
      case "--auto-approve": {
        const next = argv[i + 1]
        out["autoApproveAfterMillis"] = inline !== undefined || (next !== undefined && /^\d+(\.\d+)?$/.test(next))
          ? num()
          : 0
        break
      }
      case "--interval":
        out["interval"] = num()
        break
      case "--access-token-ttl":
        out["accessTokenTtlSeconds"] = num()
        break
      case "--device-code-ttl":
        out["deviceCodeTtlSeconds"] = num()
        break
      case "--client-id":
        out["clientId"] = value()
        break
      case "--error-rate":
        faults["serverErrorRate"] = num()
        break
      case "--drop-rate":
        faults["dropRate"] = num()
        break
      case "--rate-limit-rate":
        faults["tooManyRequestsRate"] = num()
        break
      case "--retry-after":
        faults["retryAfterSeconds"] = num()
        break
      case "--latency":
        faults["latencyMillis"] = num()
        break
      case "--fault-paths":
        faults["paths"] = value().split(",").map((p) => p.trim()).filter((p) => p !== "")
        break
      case "--seed":
        faults["seed"] = num()
        break
      default:
        throw new EmulatorArgsError(`unknown flag ${arg}`)
    }
  }
  if (Object.keys(faults).length > 0) out["faults"] = faults
  return out as EmulatorOptions
}
