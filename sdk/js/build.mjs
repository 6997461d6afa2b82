// Builds the package: dist/index.js (ESM), dist/index.cjs (CommonJS), dist/roomlog.min.js (IIFE, global
// `Roomlog`, for <script> tags), and the type declarations (tsc) for both module kinds. The IIFE is also copied to
// relay/demo/static/, where the relay embeds it (go:embed) for the demo page; test/bundle.test.mjs checks that the
// committed copy is what this script builds from the sources.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, "dist");
export const demoBundle = join(root, "../../relay/demo/static/roomlog.min.js");

/** The esbuild options of each output, shared with the tests. */
export function options(format) {
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  return {
    entryPoints: [join(root, "src/index.ts")],
    bundle: true,
    format,
    target: "es2020",
    platform: "neutral",
    legalComments: "none",
    banner: { js: `/* roomlog ${version} (sdk/js) */` },
    ...(format === "iife" ? { globalName: "Roomlog", minify: true } : {}),
  };
}

async function main() {
  rmSync(dist, { recursive: true, force: true });
  await esbuild.build({ ...options("esm"), outfile: join(dist, "index.js") });
  await esbuild.build({ ...options("cjs"), outfile: join(dist, "index.cjs") });
  await esbuild.build({ ...options("iife"), outfile: join(dist, "roomlog.min.js") });
  mkdirSync(dirname(demoBundle), { recursive: true });
  copyFileSync(join(dist, "roomlog.min.js"), demoBundle);

  execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.json")], {
    stdio: "inherit",
  });
  // The CommonJS entry gets its own declarations (.d.cts importing .cjs), so that TypeScript under node16
  // resolution types `require("roomlog")` as CommonJS.
  for (const f of readdirSync(dist)) {
    if (!f.endsWith(".d.ts")) continue;
    const text = readFileSync(join(dist, f), "utf8").replace(/from "(\.\/[^"]+)\.js"/g, 'from "$1.cjs"');
    writeFileSync(join(dist, f.replace(/\.d\.ts$/, ".d.cts")), text);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
