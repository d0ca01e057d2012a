/**
 * The emulator's device page (`/device`), where a person approves or denies a
 * login by its user code, as on `kimi.com`: a small HTML form, every value
 * escaped.
 *
 * @since 0.2.0
 */
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import type { Users } from "../Users.js"
import { CurrentRequest, type RouteDeps } from "./Shared.js"

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c] ?? c)

const page = (title: string, inner: string, status = 200) =>
  HttpServerResponse.html(
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
      `<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}` +
      `code{font-size:1.4rem}button{font-size:1rem;margin-right:.5rem;padding:.4rem 1rem}</style></head>` +
      `<body><h1>${escapeHtml(title)}</h1>${inner}</body></html>`
  ).pipe(HttpServerResponse.setStatus(status))

const codeForm = (userCode: string, users: Users) =>
  `<form method="post" action="/device"><p><label>User code <input name="user_code" value="${
    escapeHtml(userCode)
  }" autocomplete="off"></label></p>${users.chooser(escapeHtml)}` +
  `<p><button name="action" value="approve">Approve</button><button name="action" value="deny">Deny</button></p></form>`

/** `GET /device` (the form, or the code's state) and `POST /device` (the decision). */
export const devicePageRoutes = ({ state, users }: RouteDeps) => {
  const devicePage = Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const userCode = rec.query["user_code"] ?? ""
    const info = userCode === "" ? undefined : state.findByUserCode(userCode)
    if (userCode !== "" && info === undefined) {
      return page("Kimi emulator: unknown code", `<p>No login waits for that code.</p>${codeForm(userCode, users)}`, 404)
    }
    if (info !== undefined && (info.status !== "pending" || state.settings.now() >= info.expiresAt)) {
      const status = state.settings.now() >= info.expiresAt && info.status === "pending" ? "expired" : info.status
      return page("Kimi emulator", `<p>The code <code>${escapeHtml(info.userCode)}</code> is ${status}.</p>`)
    }
    return page(
      "Kimi emulator: approve a login",
      `<p>A device asks to log in to Kimi Code. Check that the code matches the one it shows.</p>${codeForm(userCode, users)}`
    )
  })

  const deviceDecision = Effect.gen(function*() {
    const rec = yield* CurrentRequest
    const userCode = rec.form?.["user_code"] ?? ""
    const action = rec.form?.["action"]
    if (action !== "approve" && action !== "deny") {
      return page("Kimi emulator", `<p>Choose Approve or Deny.</p>${codeForm(userCode, users)}`, 400)
    }
    const user = rec.form?.["user"]
    if (action === "approve" && user !== undefined && users.find(user) === undefined) {
      return page("Kimi emulator", `<p>No user <code>${escapeHtml(user)}</code> here.</p>${codeForm(userCode, users)}`, 400)
    }
    const done = action === "approve" ? state.approve(userCode, user) : state.deny(userCode)
    if (!done) {
      return page(
        "Kimi emulator",
        `<p>The code <code>${escapeHtml(userCode)}</code> is unknown, expired or already decided.</p>`,
        404
      )
    }
    return action === "approve"
      ? page("Login approved", "<p>You can close this page and return to your terminal.</p>")
      : page("Login denied", "<p>The device will not be logged in.</p>")
  })

  return [HttpRouter.route("GET", "/device", devicePage), HttpRouter.route("POST", "/device", deviceDecision)]
}
