import { spawn } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../../src/store/embedded.js";
import { PINNED, SERVER_CPU, sleep } from "./env.js";
import { healthOk } from "./grpc-client.js";

const MAIN = join(resolve(dirname(fileURLToPath(import.meta.url)), "..", ".."), "src", "main.js");

/** A latchkey server the bench started: where to call it and whose CPU to read. */
export interface Server {
  readonly label: string;
  readonly address: string;
  readonly pid: number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Extra node flags (e.g. `--cpu-prof`), before the script. */
  readonly nodeFlags?: readonly string[];
  /** Where the server's stdout goes (default: discarded). */
  readonly stdoutFd?: number;
  /** Another build's main.js (A/B runs); default this build's dist/src/main.js. */
  readonly main?: string;
}

/**
 * Starts dist/src/main.js with `env` on free ports, pinned alone to the server core (workers
 * inherit the pinning), and waits until Health/Check answers SERVING.
 */
export async function startServer(
  env: Record<string, string>,
  label: string,
  options: StartOptions = {},
): Promise<Server> {
  const grpcPort = await freePort();
  const httpPort = await freePort();
  const childEnv: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    LATCHKEY_GRPC_LISTEN: `127.0.0.1:${grpcPort}`,
    LATCHKEY_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    LATCHKEY_LOG_LEVEL: "warn",
    LATCHKEY_BOOTSTRAP_ORG: "",
    ...env,
  };
  const nodeArgs = [...(options.nodeFlags ?? []), options.main ?? MAIN];
  const [cmd, args] = PINNED
    ? ["taskset", ["-c", String(SERVER_CPU), process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
  // taskset execs node: the pid is the server's.
  const proc = spawn(cmd, args, {
    env: childEnv,
    stdio: ["ignore", options.stdoutFd ?? "ignore", "pipe"],
  });
  let stderr = "";
  proc.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-10_000);
  });
  const address = `127.0.0.1:${grpcPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) {
      throw new Error(`server ${label} exited early: ${stderr.slice(-2_000)}`);
    }
    if (await healthOk(address)) break;
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`server ${label} did not become healthy: ${stderr.slice(-2_000)}`);
    }
    await sleep(100);
  }
  const pid = proc.pid;
  return {
    label,
    address,
    pid,
    stop: () =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) {
          res();
          return;
        }
        const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
        proc.once("exit", () => {
          clearTimeout(t);
          res();
        });
        proc.kill("SIGTERM");
      }),
  };
}
