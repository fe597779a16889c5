import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { tokenPattern } from "../../src/domain/token-format.js";
import { freePort } from "../../src/store/embedded.js";

// The real server as `npm start` runs it: `node dist/src/main.js` (built by `pretest`) as a
// child process, for tests of what an operator sees (exit codes, output, signals, probes) and
// of what only a real process has (its environment: NODE_EXTRA_CA_CERTS, signals).

const ROOT = process.cwd();
const MAIN = join(ROOT, "dist/src/main.js");
/** A token as latchkey issues it with the default prefix. */
export const TOKEN = tokenPattern("lk");
const TOKENS = new RegExp(TOKEN.source, "g");

/** Every token-shaped string in `text`, once each. */
export function tokensIn(text: string): string[] {
  return [...new Set(text.match(TOKENS) ?? [])];
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly grpcAddr: string;
  readonly httpAddr: string;
  /** stdout and stderr, interleaved as they arrived. */
  output(): string;
  stderr(): string;
  readonly exited: Promise<Exit>;
  /** SIGTERM, then the exit and how long it took. */
  stop(): Promise<Exit & { ms: number }>;
}

const children = new Set<ChildProcess>();

/** Kills every server this file started that is still running (call it from afterAll). */
export function killServers(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}

/** The parent's environment without anything latchkey reads, plus `env`. */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("LATCHKEY_") || k === "DATABASE_URL" || k === "REDIS_URL") continue;
    if (k === "NODE_OPTIONS") continue; // the child is plain node, whatever runs the tests
    if (k === "NODE_EXTRA_CA_CERTS") continue; // trusted CAs are the test's to choose
    out[k] = v;
  }
  return { ...out, ...env };
}

/**
 * Spawns `node dist/src/main.js`; resolves at once, without waiting for the listeners.
 * `detached`: in its own process group, as a terminal's foreground job is (Ctrl-C signals it).
 */
export function spawnServer(
  env: Record<string, string>,
  detached = false,
): Omit<ServerProcess, "grpcAddr" | "httpAddr"> {
  const child = spawn(process.execPath, [MAIN], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
    detached,
  });
  children.add(child);
  let all = "";
  let err = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    all += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    all += d;
    err += d;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    output: () => all,
    stderr: () => err,
    exited,
    async stop() {
      const started = Date.now();
      child.kill("SIGTERM");
      const exit = await exited;
      return { ...exit, ms: Date.now() - started };
    },
  };
}

/**
 * Starts latchkey on two free ports and waits for its "listening" line. A port found free can be
 * taken by another test file's process before latchkey binds it; latchkey then exits before it
 * touches the database, and the start is retried on fresh ports.
 */
export async function startServer(
  env: Record<string, string>,
  detached = false,
): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServerOnce(env, detached);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= 3) throw err;
    }
  }
}

class PortTaken extends Error {}

async function startServerOnce(env: Record<string, string>, detached: boolean) {
  const grpcAddr = `127.0.0.1:${await freePort()}`;
  const httpAddr = `127.0.0.1:${await freePort()}`;
  const proc = spawnServer(
    {
      LATCHKEY_GRPC_LISTEN: grpcAddr,
      LATCHKEY_HTTP_LISTEN: httpAddr,
      ...env,
    },
    detached,
  );
  const deadline = Date.now() + 20_000;
  let exit: Exit | undefined;
  void proc.exited.then((e) => {
    exit = e;
  });
  while (!proc.stderr().includes("gRPC listening on")) {
    if (exit !== undefined || Date.now() > deadline) {
      proc.child.kill("SIGKILL");
      const message = `latchkey did not start (${exit === undefined ? "timed out" : `exit ${exit.code}`}):\n${proc.output()}`;
      const taken = [grpcAddr, httpAddr].some((a) =>
        proc.stderr().includes(`${a} is already in use`),
      );
      throw exit !== undefined && taken ? new PortTaken(message) : new Error(message);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  // latchkey prints its "listening" line a few statements before it installs its SIGTERM and
  // SIGINT handlers (src/main.ts); a test that signals it the moment the line shows can, on a
  // loaded machine, kill it by the default action (exit by SIGTERM, not 0). One answered
  // request means its event loop has run since, so the handlers are in place.
  await waitForStatus(`http://${httpAddr}/healthz`, 200, 20_000);
  return { ...proc, grpcAddr, httpAddr };
}

/** The bootstrap secret from the start-up output (there must be exactly one). */
export function bootstrapTokenOf(server: ServerProcess): string {
  const found = tokensIn(server.output());
  const [only] = found;
  if (found.length !== 1 || only === undefined) {
    throw new Error(`expected one bootstrap token, found ${found.length}:\n${server.output()}`);
  }
  return only;
}

export async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

/** Polls `url` until it answers `status`, or fails with the last answer after `ms`. */
export async function waitForStatus(url: string, status: number, ms = 10_000): Promise<unknown> {
  const end = Date.now() + ms;
  let last: { status: number; body: unknown } | undefined;
  for (;;) {
    last = await getJson(url).catch((err: unknown) => ({ status: -1, body: String(err) }));
    if (last.status === status) return last.body;
    if (Date.now() > end) {
      throw new Error(`${url}: wanted ${status}, last ${last.status} ${JSON.stringify(last.body)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function channelTo(server: ServerProcess): grpc.Client {
  return new grpc.Client(server.grpcAddr, grpc.credentials.createInsecure());
}
