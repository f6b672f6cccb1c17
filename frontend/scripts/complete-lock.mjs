// Completes package-lock.json with the platform packages an optional dependency map names but the
// lock lacks. The npm registry reachable here mirrors only some platforms' native packages (e.g.
// rollup's for linux-x64-gnu), so `npm install` leaves the others out of the lock, and `npm ci`
// then refuses the lock ("Missing: @rollup/rollup-… from lock file"). An entry with the package's
// os/cpu/libc lets `npm ci` accept the lock and skip the package on other platforms without
// fetching it. Run after `npm install` changes the lock: `node scripts/complete-lock.mjs`.
// `--check` only reports (exit 1 when something is missing).
import { readFileSync, writeFileSync } from "node:fs";

const OS = new Set(["aix", "android", "darwin", "freebsd", "linux", "netbsd", "openbsd", "openharmony", "sunos", "win32"]);
const CPU = new Set(["arm", "arm64", "ia32", "loong64", "mips64el", "ppc64", "riscv64", "s390x", "x64"]);

/** os/cpu/libc from a native package's name, e.g. `@rollup/rollup-linux-arm64-musl`. */
export function platformOf(name) {
  const parts = name.split("/").pop().split("-");
  const osIndex = parts.findIndex((part) => OS.has(part));
  if (osIndex === -1 || !CPU.has(parts[osIndex + 1])) return null;
  const platform = { os: [parts[osIndex]], cpu: [parts[osIndex + 1]] };
  const abi = parts[osIndex + 2] ?? "";
  if (platform.os[0] === "linux" && abi.startsWith("gnu")) platform.libc = ["glibc"];
  if (platform.os[0] === "linux" && abi.startsWith("musl")) platform.libc = ["musl"];
  return platform;
}

function resolves(packages, fromPath, name) {
  let base = fromPath;
  for (;;) {
    if (packages[`${base ? `${base}/` : ""}node_modules/${name}`]) return true;
    if (!base) return false;
    const index = base.lastIndexOf("/node_modules/");
    base = index < 0 ? "" : base.slice(0, index);
  }
}

const lockPath = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const packages = lock.packages;
const added = [];
const unknown = [];
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (resolves(packages, path, name)) continue;
    const platform = platformOf(name);
    if (!platform) {
      unknown.push(`${name}@${version} (optional dependency of ${path || "the root"})`);
      continue;
    }
    const key = packages[`node_modules/${name}`] ? `${path}/node_modules/${name}` : `node_modules/${name}`;
    // Keys in the order npm writes them, so a later `npm install` leaves the entry as it is.
    packages[key] = {
      version,
      cpu: platform.cpu,
      ...(entry.dev ? { dev: true } : {}),
      ...(platform.libc ? { libc: platform.libc } : {}),
      optional: true,
      os: platform.os,
    };
    added.push(`${name}@${version}`);
  }
}
if (process.argv.includes("--check")) {
  if (added.length || unknown.length) {
    console.error(`package-lock.json lacks: ${[...added, ...unknown].join(", ")}; run node scripts/complete-lock.mjs`);
    process.exit(1);
  }
} else {
  if (added.length) {
    lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))));
    writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
  }
  console.log(`package-lock.json: added ${added.length} platform entries${added.length ? `: ${added.join(", ")}` : ""}`);
}
if (unknown.length) {
  console.error(`cannot tell the platform of: ${unknown.join(", ")}`);
  process.exit(1);
}
