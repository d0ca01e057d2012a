#!/usr/bin/env node
// Prints the longest function of every TypeScript module under src/ (or of
// the files and folders given), in lines from its first to its last line, with
// the file's own length: the measure issue 17 uses for "a constructor that is
// wiring, not a screenful of decisions".
//
// A function is any function declaration, function expression, arrow
// function, method, accessor or constructor; `Effect.gen(function*() {...})`
// counts as the generator inside it. A function's length includes the
// functions nested in it (a closure holding its decisions is long). It is
// named after the binding, property or method that holds it, or the call it
// is passed to (`make`, `layer`, `<anonymous>`).
//
// Usage: node scripts/longest-function.mjs [--json] [--min N] [path...]
//   --json   one JSON array of { file, lines, function, line, fileLines }
//   --min N  only files whose longest function has at least N lines
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const args = process.argv.slice(2)
const json = args.includes("--json")
const minAt = args.indexOf("--min")
const min = minAt >= 0 ? Number(args[minAt + 1]) : 0
const targets = args.filter((a, i) => !a.startsWith("--") && !(minAt >= 0 && i === minAt + 1))

const walk = (p) => {
  const stat = fs.statSync(p)
  if (stat.isDirectory()) return fs.readdirSync(p).sort().flatMap((e) => walk(path.join(p, e)))
  return /\.(m|c)?tsx?$/.test(p) && !p.endsWith(".d.ts") ? [p] : []
}

const files = (targets.length > 0 ? targets : [path.join(root, "src")]).flatMap((t) => walk(path.resolve(t)))

/** The name a function is known by: its own, its binding's, its property's, or the call it is an argument of. */
const nameOf = (node) => {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text
  if (ts.isConstructorDeclaration(node)) return "constructor"
  let p = node.parent
  let via = ""
  while (p) {
    if (ts.isVariableDeclaration(p) && ts.isIdentifier(p.name)) return p.name.text + via
    if ((ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) && p.name && !ts.isComputedPropertyName(p.name)) {
      return p.name.getText() + via
    }
    if (ts.isCallExpression(p) && !via) via = ` (in ${p.expression.getText().slice(0, 40)})`
    if (ts.isBlock(p) || ts.isSourceFile(p)) break
    p = p.parent
  }
  return "<anonymous>" + via
}

const isFunction = (n) =>
  ts.isFunctionDeclaration(n) || ts.isFunctionExpression(n) || ts.isArrowFunction(n) || ts.isMethodDeclaration(n) ||
  ts.isGetAccessorDeclaration(n) || ts.isSetAccessorDeclaration(n) || ts.isConstructorDeclaration(n)

const measure = (file) => {
  const text = fs.readFileSync(file, "utf8")
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  let best = { lines: 0, function: "-", line: 0 }
  const visit = (node) => {
    if (isFunction(node) && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line
      const lines = end - start + 1
      if (lines > best.lines) best = { lines, function: nameOf(node), line: start + 1 }
    }
    ts.forEachChild(node, visit)
  }
  visit(sf)
  return { file: path.relative(root, file), ...best, fileLines: text.split("\n").length - (text.endsWith("\n") ? 1 : 0) }
}

const rows = files.map(measure).filter((r) => r.lines >= min)
if (json) {
  console.log(JSON.stringify(rows, null, 2))
} else {
  const w = Math.max(...rows.map((r) => r.file.length), 4)
  console.log(`${"file".padEnd(w)}  longest  function (line)  [file lines]`)
  for (const r of rows) console.log(`${r.file.padEnd(w)}  ${String(r.lines).padStart(7)}  ${r.function} (${r.line})  [${r.fileLines}]`)
}
