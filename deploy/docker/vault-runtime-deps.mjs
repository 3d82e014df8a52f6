// Used by vault.Dockerfile's deps stage, on a throwaway copy of package.json: the vault imports
// better-sqlite3, pg and @aws-sdk/client-kms at run time, but package.json lists them under
// devDependencies, so `npm ci --omit=dev` would leave them out and the vault would not start
// (ERR_MODULE_NOT_FOUND). This moves each of them to dependencies with the same version spec, so the
// lockfile's exact versions still apply (npm ci recomputes which packages are dev from package.json).
// A no-op for a package already under dependencies: once package.json lists them there, delete this.
import { readFileSync, writeFileSync } from "node:fs";

const RUNTIME = ["better-sqlite3", "pg", "@aws-sdk/client-kms"];
const file = process.argv[2] ?? "package.json";
const pkg = JSON.parse(readFileSync(file, "utf8"));
pkg.dependencies ??= {};
for (const name of RUNTIME) {
  const spec = pkg.devDependencies?.[name];
  if (spec === undefined) {
    if (pkg.dependencies[name] === undefined) throw new Error(`${name} is in neither dependencies nor devDependencies`);
    continue;
  }
  pkg.dependencies[name] = spec;
  delete pkg.devDependencies[name];
}
writeFileSync(file, JSON.stringify(pkg, null, 2) + "\n");
