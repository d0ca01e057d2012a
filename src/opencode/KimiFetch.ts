/**
 * The plugin's import path of the authorizing `fetch` it hands to the AI SDK.
 * The adapter itself is `../AuthorizingFetch.ts` (shared with the AI SDK
 * provider and the promise facade) over the one request core
 * `../KimiRequest.ts`; this module only re-exports it for `./PluginCore.ts`.
 *
 * @since 0.1.0
 */
export { ERROR_HEADER, errorResponse, type KimiFetchDeps, makeKimiFetch, type TokenResult } from "../AuthorizingFetch.js"
