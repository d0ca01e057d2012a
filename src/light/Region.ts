/**
 * Kimi's two regions and where each one lives.
 *
 * A login is only good at the region that issued it: `mainland-cn`
 * (kimi.com) and `global` (kimi.ai) are separate OAuth servers and separate
 * APIs. Moonshot's own `kimi-code` client uses these names
 * (`packages/oauth/src/region.ts`), and OpenCode's bundled catalog has one
 * provider per region. This module imports nothing from `effect`: the CLI's
 * fast path and the plugin's thin entry read it without loading the core.
 *
 * @since 0.2.0
 */

/** A Kimi region, named as Moonshot's `kimi-code` client names it. */
export type KimiRegion = "mainland-cn" | "global"

/** Where a region's OAuth server and API live, and OpenCode's catalog entry for it. */
export interface RegionEndpoints {
  readonly region: KimiRegion
  /** The OAuth host (device authorization and token endpoints). */
  readonly oauthHost: string
  /** The Kimi For Coding API base (OpenAI-compatible). */
  readonly apiBaseUrl: string
  /** OpenCode's bundled catalog provider id for this region. */
  readonly providerId: string
  /** The name OpenCode's picker shows for that provider. */
  readonly label: string
  /** The Kimi site of the region, as people know it (`kimi.com`, `kimi.ai`). */
  readonly site: string
}

/** Both regions. */
export const REGIONS: Readonly<Record<KimiRegion, RegionEndpoints>> = {
  "mainland-cn": {
    region: "mainland-cn",
    oauthHost: "https://auth.kimi.com",
    apiBaseUrl: "https://api.kimi.com/coding/v1",
    providerId: "kimi-code-plan-cn",
    label: "Kimi For Coding (kimi.com)",
    site: "kimi.com"
  },
  global: {
    region: "global",
    oauthHost: "https://auth.kimi.ai",
    apiBaseUrl: "https://api.kimi.ai/coding/v1",
    providerId: "kimi-code-plan-global",
    label: "Kimi For Coding (kimi.ai)",
    site: "kimi.ai"
  }
}

/** The region used when none is chosen (as in Moonshot's clients). */
export const DEFAULT_REGION: KimiRegion = "mainland-cn"

/** Whether `u` names a region. */
export const isRegion = (u: unknown): u is KimiRegion => u === "mainland-cn" || u === "global"

/** A region as people say it, once: `kimi.com (mainland-cn)`, `kimi.ai (global)`. */
export const regionName = (region: KimiRegion): string => `${REGIONS[region].site} (${region})`

/** The region an OpenCode catalog provider id belongs to, if any. */
export const regionOfProvider = (providerId: string): KimiRegion | undefined => {
  for (const r of Object.values(REGIONS)) if (r.providerId === providerId) return r.region
  return undefined
}
