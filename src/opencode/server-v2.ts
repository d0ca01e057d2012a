/**
 * The package's OpenCode 2 entry: `exports["./server"]` under the `bun`
 * condition (OpenCode 2 resolves `<package>/server` with Bun's conditions;
 * OpenCode 1.18.33 ignores `bun` and loads `server.ts`'s bundle), and the
 * local-checkout `server.js` at the package root.
 *
 * - `default`: OpenCode 2's `{ id, setup }` (`V2Plugin.ts`), both regions.
 *   It also carries V1's `server` (one region), for a V1 host that would
 *   load this file: such a host calls only `default.server`.
 * - `kimiCodePlanCn`, `kimiCodePlanGlobal`: the same two V1 instances as
 *   `server.ts`, so a Bun program importing `opencode-kimi-auth/server`
 *   keeps its named exports.
 *
 * @since 0.2.0
 */
import { regionPlugin } from "./KimiPlugin.js"
import { pluginV2 } from "./V2Plugin.js"

export { kimiCodePlanCn, kimiCodePlanGlobal } from "./server.js"

export default { ...pluginV2, server: regionPlugin("mainland-cn") }
