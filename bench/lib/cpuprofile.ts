import { readFileSync } from "node:fs";

/** The parts of a V8 .cpuprofile (node --cpu-prof) this summary reads. */
interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Where a frame's code lives, coarse enough to add up into "where the µs go". */
export function category(url: string, name: string): string {
  if (name === "(garbage collector)") return "GC (main thread)";
  if (name === "(program)") return "V8/native (program)";
  if (name === "(idle)") return "(idle)";
  if (url.includes("/@grpc/grpc-js/")) return "grpc-js";
  if (url.includes("/@bufbuild/protobuf/")) return "protobuf-es";
  if (url.includes("/node_modules/postgres/")) return "postgres.js";
  if (url.includes("/node_modules/ioredis/") || url.includes("/node_modules/@ioredis/"))
    return "ioredis";
  if (url.includes("/node_modules/lru-cache/")) return "lru-cache";
  if (url.includes("/node_modules/"))
    return `other package (${url.split("/node_modules/")[1]?.split("/")[0] ?? "?"})`;
  if (url.includes("/dist/src/")) return "latchkey";
  if (url.startsWith("node:internal/http2") || url.startsWith("node:http2")) return "node:http2";
  if (url.startsWith("node:")) return "node (streams, net, timers, …)";
  return url === "" ? "native builtins" : "other";
}

function shortUrl(url: string): string {
  const i = url.lastIndexOf("/dist/");
  if (i >= 0) return url.slice(i + 6);
  const j = url.lastIndexOf("/node_modules/");
  if (j >= 0) return url.slice(j + 14);
  return url;
}

/** Self and inclusive sample time (µs) by category and by function, over a time window. */
export interface ProfileSummary {
  /** Non-idle main-thread time in the window, µs. */
  readonly busyUs: number;
  readonly byCategory: Map<string, number>;
  readonly selfByFunction: Map<string, number>;
  /** Inclusive time of latchkey functions (each counted once per sample). */
  readonly inclusiveLatchkey: Map<string, number>;
}

/**
 * Reads a .cpuprofile and sums its samples inside [fromUs, toUs] (V8 and process.hrtime share
 * CLOCK_MONOTONIC on Linux, so the bench can cut out the measured window of a phase).
 */
export function summarise(file: string, fromUs: number, toUs: number): ProfileSummary {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n: ProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const byCategory = new Map<string, number>();
  const selfByFunction = new Map<string, number>();
  const inclusiveLatchkey = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  let t = p.startTime;
  let busyUs = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0; // a sample lasts until the next one
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) continue;
    const leaf = byId.get(p.samples[i] ?? -1);
    if (leaf === undefined) continue;
    const cat = category(leaf.callFrame.url, leaf.callFrame.functionName);
    if (cat === "(idle)") continue;
    busyUs += dt;
    add(byCategory, cat, dt);
    add(selfByFunction, `[${cat}] ${key(leaf)}`, dt);
    const seen = new Set<string>();
    for (
      let n: ProfileNode | undefined = leaf;
      n !== undefined;
      n = byId.get(parent.get(n.id) ?? -1)
    ) {
      if (!n.callFrame.url.includes("/dist/src/")) continue;
      const k = key(n);
      if (seen.has(k)) continue;
      seen.add(k);
      add(inclusiveLatchkey, k, dt);
    }
  }
  return { busyUs, byCategory, selfByFunction, inclusiveLatchkey };
}

/** Young-generation bytes allocated between two uptimes (ms), from --trace-gc lines. */
export function allocatedBytes(
  traceGc: string,
  fromMs: number,
  toMs: number,
): { bytes: number; gcs: number } {
  const re =
    /(\d+) ms: (Scavenge|Mark-Compact|Mark-sweep)[^\d]*([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/g;
  let lastAfter: number | undefined;
  let bytes = 0;
  let gcs = 0;
  for (const m of traceGc.matchAll(re)) {
    const at = Number(m[1]);
    const before = Number(m[3]);
    const after = Number(m[5]);
    if (at >= fromMs && at <= toMs && lastAfter !== undefined) {
      bytes += Math.max(0, before - lastAfter) * 1024 * 1024;
      gcs++;
    }
    lastAfter = after;
  }
  return { bytes, gcs };
}
