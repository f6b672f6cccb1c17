// After `vite build`: prints the gzipped size of the JS the sign-in page loads before anything else —
// index.html's entry chunk and, transitively, its static imports (what Vite modulepreloads).
// Lazy chunks (dynamic imports, e.g. the workspace view) are not counted. Exits 1 above the budget.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET_BYTES = 250 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dist, ".vite", "manifest.json"), "utf8"));

const entry = manifest["index.html"];
if (!entry) throw new Error(`${dist}.vite/manifest.json has no index.html entry`);

const seen = new Set();
const visit = (key) => {
  const chunk = manifest[key];
  if (!chunk) throw new Error(`manifest entry ${key} is missing`);
  if (seen.has(chunk.file)) return;
  seen.add(chunk.file);
  for (const imported of chunk.imports ?? []) visit(imported);
};
visit("index.html");

let raw = 0;
let gzipped = 0;
for (const file of seen) {
  const bytes = readFileSync(join(dist, file));
  const size = gzipSync(bytes, { level: 9 }).length;
  raw += bytes.length;
  gzipped += size;
  console.log(`  ${file}  ${(bytes.length / 1024).toFixed(1)} KiB, ${(size / 1024).toFixed(1)} KiB gzipped`);
}
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(
  `sign-in page initial JS: ${kib(gzipped)} gzipped (${kib(raw)} raw, ${seen.size} files; budget ${kib(BUDGET_BYTES)})`,
);
if (gzipped > BUDGET_BYTES) {
  console.error(`initial JS is over the budget by ${kib(gzipped - BUDGET_BYTES)}`);
  process.exit(1);
}
