// The folder to list in OpenCode 2.1's `plugins` (`"plugins": ["/path/to/opencode-kimi-auth/plugin"]`).
// OpenCode 2.1 loads `<folder>/server.js` and watches the whole folder, every file below it, for changes:
// this folder holds one file, where the checkout's own folder holds node_modules and .git (a crawl that
// cost each run ~200 ms of CPU; test/opencode/NOTES.md, "Cost"). Build first (`npm run build`).
export { default, kimiCodePlanCn, kimiCodePlanGlobal } from "../dist/bundle/server-v2.js"
