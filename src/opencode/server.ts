/**
 * The package's OpenCode entry (`exports["./server"]`): one plugin instance
 * per Kimi region, on OpenCode's own catalog providers.
 *
 * OpenCode 1.18.33 gives each plugin instance one `auth` hook, and calls
 * `server()` once per package however often it is listed; a module with no
 * default `{ id, server }` has each of its exports called as a plugin
 * (test/opencode/NOTES.md, "Serving both Kimi providers"). So this module
 * exports exactly two `{ id, server }` objects and nothing else (every
 * export here is called by OpenCode):
 *
 * - `kimiCodePlanCn`: `kimi-code-plan-cn`, "Kimi For Coding (kimi.com)", region `mainland-cn`;
 * - `kimiCodePlanGlobal`: `kimi-code-plan-global`, "Kimi For Coding (kimi.ai)", region `global`.
 *
 * Both receive the same plugin options. Nothing here loads Effect: the core
 * is imported on the first request or login.
 *
 * @since 0.2.0
 */
import { PLUGIN_ID, regionPlugin } from "./KimiPlugin.js"

/** Kimi For Coding (kimi.com): OpenCode's `kimi-code-plan-cn`. */
export const kimiCodePlanCn = { id: `${PLUGIN_ID}/kimi-code-plan-cn`, server: regionPlugin("mainland-cn") }

/** Kimi For Coding (kimi.ai): OpenCode's `kimi-code-plan-global`. */
export const kimiCodePlanGlobal = { id: `${PLUGIN_ID}/kimi-code-plan-global`, server: regionPlugin("global") }
