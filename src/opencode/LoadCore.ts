/**
 * Loads the plugin's core (`PluginCore.ts`, the Effect half) on first need,
 * for both OpenCode entries.
 *
 * In the bundle the core is a file of its own (`dist/bundle/chunks/
 * opencode-core.js`), imported through a specifier computed at run time:
 * OpenCode 2.1 reads and watches every module a plugin's entry reaches
 * through literal imports, dynamic ones included, so a literal `import()`
 * made every start read the ~600 KiB core (Effect) that a run with a valid
 * login never loads (test/opencode/NOTES.md §15, "Cost"). From the sources
 * and tsc's output it is the module itself. `scripts/build-bundle.mjs`
 * defines {@link KIMI_BUNDLED_CORE} and checks that it resolves.
 *
 * @since 0.2.0
 */
import { lazyModule } from "../light/LazyModule.js"

/** The bundled core's specifier relative to the module holding this loader; defined by the bundle build only. */
declare const KIMI_BUNDLED_CORE: string | undefined

type CoreModule = typeof import("./PluginCore.js")

/** The core module, imported once per process on first need (a failed load is tried again next time). */
export const loadCore: () => Promise<CoreModule> = lazyModule(() =>
  typeof KIMI_BUNDLED_CORE === "string"
    ? (import(/* a computed specifier: never followed by the host's watcher */ new URL(KIMI_BUNDLED_CORE, import.meta.url).href) as Promise<CoreModule>)
    : import("./PluginCore.js")
)
