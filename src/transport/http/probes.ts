import type * as http from "node:http";
import type * as http2 from "node:http2";
import type { Registry } from "prom-client";
import type { ErrorLog } from "../error-mapper.js";

/** What /readyz reports: `ok` decides 200 or 503, `checks` names each dependency's state. */
export interface Readiness {
  readonly ok: boolean;
  /** `ready`, `degraded` (ready, an optional dependency such as Redis is down) or `not_ready`. */
  readonly status?: string;
  readonly checks: Record<string, string>;
}

export interface ProbeOptions {
  /** Asked on every GET /readyz; should answer fast (it is polled by orchestrators). */
  readonly ready: () => Promise<Readiness>;
  /** Served as GET /metrics. */
  readonly metrics: Registry;
  readonly log: ErrorLog;
}

type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

/** The paths answered beside the RPCs (GET only); they are logged at debug level. */
export function isProbePath(path: string): boolean {
  return path === "/healthz" || path === "/readyz" || path === "/metrics";
}

function send(res: NodeResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

async function answer(path: string, res: NodeResponse, opts: ProbeOptions): Promise<void> {
  if (path === "/healthz") {
    send(res, 200, "text/plain; charset=utf-8", "ok\n");
  } else if (path === "/readyz") {
    let readiness: Readiness;
    try {
      readiness = await opts.ready();
    } catch (err) {
      opts.log.error({ err }, "readiness check failed");
      readiness = { ok: false, checks: { ready: "error" } };
    }
    send(res, readiness.ok ? 200 : 503, "application/json", JSON.stringify(readiness));
  } else {
    send(res, 200, opts.metrics.contentType, await opts.metrics.metrics());
  }
}

/**
 * Answers GET /healthz (process alive), /readyz (dependencies reachable) and /metrics
 * (Prometheus text), so orchestrators and scrapers need no RPC client; a failure becomes a
 * plain 500 and a log line.
 */
export function serveProbe(path: string, res: NodeResponse, opts: ProbeOptions): void {
  answer(path, res, opts).catch((err: unknown) => {
    opts.log.error({ err, path }, "plain route failed");
    if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
    else res.end();
  });
}
