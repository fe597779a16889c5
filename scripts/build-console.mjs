// Builds the web console (console/) into dist/console: one ES module bundle, one stylesheet and
// index.html, all served by the HTTP listener under /console/. No CDN and no runtime fetches:
// everything the page needs is in these files.
import { copyFile, mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const out = `${root}dist/console`;

// src/domain/cidr.ts loads ipaddr.js through node:module's createRequire; in the browser a shim
// hands it the bundled ipaddr.js, so the console checks allowlists with the server's own code.
const nodeModuleShim = {
  name: "node-module-shim",
  setup(b) {
    b.onResolve({ filter: /^node:module$/ }, () => ({
      path: `${root}console/src/shims/node-module.ts`,
    }));
  },
};

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  absWorkingDir: root,
  entryPoints: { app: "console/src/main.ts", style: "console/style.css" },
  outdir: out,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["chrome120", "firefox120", "safari17"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  tsconfig: "console/tsconfig.json",
  plugins: [nodeModuleShim],
  logLevel: "warning",
});
await copyFile(`${root}console/index.html`, `${out}/index.html`);
