// Parse an AsyncAPI document with the official parser (@asyncapi/parser, installed from npm by
// `make test`), as a client's tooling would: `node tests/support/asyncapi_check.mjs FILE|URL`.
// Prints every diagnostic (severity, rule, path, message) and exits 1 when any is an error or a
// warning, or when the parser gives back no document; 0 when the document is clean; 2 on bad use.
// tests/api/test_asyncapi.py runs it on the document the server serves.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const source = process.argv[2];
if (!source) {
  console.error("usage: node asyncapi_check.mjs FILE|URL");
  process.exit(2);
}

let text;
if (/^https?:\/\//.test(source)) {
  const answer = await fetch(source);
  if (!answer.ok) {
    console.error(`GET ${source}: ${answer.status}`);
    process.exit(1);
  }
  text = await answer.text();
} else {
  text = await readFile(source, "utf8");
}

const names = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([k, v]) => [v, k]));
const { document, diagnostics } = await new Parser().parse(text);
const serious = [DiagnosticSeverity.Error, DiagnosticSeverity.Warning];
let failed = document === undefined;
for (const d of diagnostics) {
  const where = (d.path || []).join("/");
  console.log(`${names[d.severity] ?? d.severity} ${d.code} /${where}: ${d.message}`);
  if (serious.includes(d.severity)) failed = true;
}
if (document !== undefined) {
  const channels = document.channels().all().map((c) => c.address());
  const messages = document.allMessages().all().length;
  console.log(`parsed: AsyncAPI ${document.version()}, channels ${channels.join(" ")}, ${messages} messages`);
}
process.exit(failed ? 1 : 0);
