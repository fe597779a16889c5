// Copies the generated latchkey.v1 code (src/gen/latchkey of the repository, made by
// `npm run generate`) into this package, so the package ships it. Files are written only when
// their content changed, so `tsc -b` sees an unchanged package as up to date.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const from = join(here, "../../../src/gen/latchkey");
const to = join(here, "../src/gen/latchkey");

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

const wanted = new Set();
for (const file of files(from)) {
  const target = join(to, relative(from, file));
  wanted.add(target);
  const text = readFileSync(file);
  let same = false;
  try {
    same = readFileSync(target).equals(text);
  } catch {}
  if (!same) {
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, text);
  }
}
let existing = [];
try {
  existing = files(to);
} catch {}
for (const file of existing) if (!wanted.has(file)) rmSync(file);
