/**
 * The `fetch` the OpenCode plugin hands to the AI SDK. It lives in
 * `../KimiFetch.ts` (shared with the AI SDK provider) over the one request
 * core `../KimiRequest.ts`; this module keeps the plugin's import path.
 *
 * @since 0.1.0
 */
export { ERROR_HEADER, errorResponse, type KimiFetchDeps, makeKimiFetch, type TokenResult } from "../KimiFetch.js"
