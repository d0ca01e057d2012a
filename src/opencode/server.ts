/**
 * The package's OpenCode entry (`exports["./server"]`): the plugin module
 * `{ id, server }` as the default export, and nothing else (OpenCode calls
 * every export of a module without a default as a plugin).
 *
 * Placeholder until the plugin's own entry (one instance per region, Effect
 * loaded on first need) lands: on a merge, take that file.
 *
 * @since 0.2.0
 */
import { pluginModule } from "./KimiPlugin.js"

export default pluginModule
