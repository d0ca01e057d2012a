// Types of bench/footprint.mjs, for test/pack.
export declare const packTarball: (dir: string) => string
export declare const installInto: (specs: ReadonlyArray<string>, options?: { readonly prefix?: string; readonly dir?: string }) => string
export declare const treeBytes: (dir: string) => number
export declare const tree: (dir: string) => { readonly bytes: number; readonly diskBytes: number }
export declare const installedPackages: (folder: string) => Array<string>
export declare const footprint: (
  specs: ReadonlyArray<string>,
  options?: { readonly prefix?: string; readonly dir?: string }
) => { readonly folder: string; readonly bytes: number; readonly diskBytes: number; readonly packages: Array<string> }
export declare const megabytes: (bytes: number) => number
