/**
 * The light plugin's decisions (`KimiPlugin.ts`), pure and tested as tables
 * (test/opencode-unit/KimiPluginDecisions.test.ts): which region an
 * instance serves, whether a request carries its own key, what the token
 * file says, and whether the account's models are worth a request.
 * Effect-free, like the module that uses them.
 *
 * @since 0.2.0
 */
import { DEFAULT_REGION, isRegion, type KimiRegion, regionOfProvider } from "../light/Region.js"
import type { SmallFile } from "../light/SmallFile.js"
import { parseTokenFileText } from "../light/TokenValidation.js"

/** The Authorization header of a RequestInit's headers, without building a `Headers` for the common plain object. */
export const authorizationOf = (headers: RequestInit["headers"]): string | undefined => {
  if (headers == null) return undefined
  if (headers instanceof Headers || Array.isArray(headers)) return new Headers(headers).get("authorization") ?? undefined
  const record = headers as Record<string, string>
  return record["authorization"] ?? record["Authorization"]
}

/** Whether a request carries a bearer of its own (an API-key login), not the OAuth `placeholder`. */
export const carriesOwnKey = (headers: RequestInit["headers"], placeholder: string): boolean => {
  const given = authorizationOf(headers)
  return given !== undefined && given !== `Bearer ${placeholder}`
}

/** What the token file says: no login, or a login with its region (if recorded; a file it cannot parse is a login of no known region). */
export type StoredLogin = { readonly kind: "none" } | { readonly kind: "login"; readonly region: KimiRegion | undefined }

/** The token file's reading as a {@link StoredLogin}. */
export const storedLoginOf = (found: SmallFile): StoredLogin => {
  if (found._tag === "Missing") return { kind: "none" }
  const parsed = found._tag === "Text" ? parseTokenFileText(found.text) : undefined
  return parsed?.ok ? { kind: "login", region: parsed.value.region } : { kind: "login", region: undefined }
}

/**
 * Whether the account's models (`GET /models`) are worth a request: with a
 * login on disk of this region (or of none recorded), or with no file but
 * OpenCode holding an OAuth login; never for a login of the other region.
 */
export const readsAccountModels = (stored: StoredLogin, openCodeOAuth: boolean, region: KimiRegion): boolean =>
  stored.kind === "none" ? openCodeOAuth : stored.region === undefined || stored.region === region

/** The region of `KimiAuthPlugin`: the `provider` option's, else the `region` option, else the default. */
export const regionFrom = (options: { readonly provider?: unknown; readonly region?: unknown }): KimiRegion => {
  if (typeof options.provider === "string") {
    const r = regionOfProvider(options.provider)
    if (r !== undefined) return r
  }
  return isRegion(options.region) ? options.region : DEFAULT_REGION
}
