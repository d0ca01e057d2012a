// OpenCode 2 reads `<dir>/server.*` of a plugin folder (not package.json's exports): a local
// checkout listed as `"plugins": ["/path/to/opencode-kimi-auth"]` loads the OpenCode 2 entry.
// OpenCode 1.18.33 reads the exports map of the same folder. Build first (`npm run build`).
export { default, kimiCodePlanCn, kimiCodePlanGlobal } from "./dist/bundle/server-v2.js"
