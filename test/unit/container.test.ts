import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";

// No Docker engine runs here: the Dockerfile and docker-compose.yml are parsed and checked
// against each other, the repository and the README's configuration table.

const ROOT = resolve(import.meta.dirname, "../..");
const read = (file: string): string => readFileSync(join(ROOT, file), "utf8");

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    const m = /^(\w+)\s+([\s\S]*)$/.exec(current);
    if (m !== null) out.push({ op: (m[1] ?? "").toUpperCase(), args: m[2] ?? "" });
    current = "";
  }
  return out;
}

/** The stages of a multi-stage Dockerfile, by name, each with its instructions. */
function stages(all: readonly Instruction[]): { name: string; body: Instruction[] }[] {
  const out: { name: string; body: Instruction[] }[] = [];
  for (const i of all) {
    if (i.op === "FROM") out.push({ name: /\bAS\s+(\S+)/i.exec(i.args)?.[1] ?? "", body: [] });
    else out.at(-1)?.body.push(i);
  }
  return out;
}

/** `KEY=value KEY2=value2` of an ENV instruction. */
function envOf(body: readonly Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of body.filter((x) => x.op === "ENV")) {
    for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env[m[1] ?? ""] = m[2] ?? "";
  }
  return env;
}

/** The variables named in the README's configuration table. */
function readmeVariables(): Set<string> {
  const readme = read("README.md");
  const table = readme.slice(readme.indexOf("## Configuration"));
  const rows = table
    .slice(0, table.indexOf("\n## ", 5))
    .split("\n")
    .filter((l) => l.startsWith("| `"));
  return new Set(
    rows.flatMap((r) => [...(r.split("|")[1] ?? "").matchAll(/`(\w+)`/g)].map((m) => m[1] ?? "")),
  );
}

function port(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(":") + 1));
}

const dockerfile = instructions(read("Dockerfile"));
const [build, runtime] = stages(dockerfile);
interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  ports?: string[];
  healthcheck?: { test?: string[] };
  depends_on?: Record<string, { condition?: string }>;
  stop_grace_period?: string;
}
const compose = parseYaml(read("docker-compose.yml")) as {
  services: Record<string, ComposeService>;
};

describe("Dockerfile", () => {
  it("builds in one stage and runs production dependencies only in another", () => {
    expect(build?.name).toBe("build");
    expect(runtime?.name).toBe("runtime");
    const runs = (s: typeof build) =>
      (s?.body ?? []).filter((i) => i.op === "RUN").map((i) => i.args);
    expect(runs(build).join("\n")).toMatch(/npm ci\b/);
    expect(runs(build).join("\n")).toMatch(/tsc -p tsconfig\.image\.json/);
    expect(runs(runtime).join("\n")).toMatch(/npm ci --omit=dev/);
    const copies = (runtime?.body ?? []).filter((i) => i.op === "COPY").map((i) => i.args);
    expect(copies).toContain("--from=build /app/dist dist");
    expect(copies.some((c) => c.startsWith("src") || c.includes(" src "))).toBe(false);
  });

  it("copies only paths that exist and that .dockerignore lets through", () => {
    const ignored = read(".dockerignore")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const i of dockerfile.filter((x) => x.op === "COPY" && !x.args.startsWith("--from"))) {
      const sources = i.args.split(/\s+/).slice(0, -1);
      for (const s of sources) {
        expect(existsSync(join(ROOT, s)), s).toBe(true);
        expect(
          ignored.some((p) => s === p || s.startsWith(`${p}/`)),
          s,
        ).toBe(false);
      }
    }
    for (const p of ["node_modules", "dist", ".latchkey", ".git"]) expect(ignored).toContain(p);
  });

  it("runs as a non-root user, stops on SIGTERM and checks /readyz on the HTTP port", () => {
    const body = runtime?.body ?? [];
    const user = body.filter((i) => i.op === "USER").at(-1)?.args;
    expect(user).toBeDefined();
    expect(["root", "0"]).not.toContain(user);
    expect(body.find((i) => i.op === "STOPSIGNAL")?.args).toBe("SIGTERM");
    const env = envOf(body);
    const health = body.find((i) => i.op === "HEALTHCHECK")?.args ?? "";
    expect(health).toContain(`127.0.0.1:${port(env.LATCHKEY_HTTP_LISTEN ?? "")}/readyz`);
    const exposed = (body.find((i) => i.op === "EXPOSE")?.args ?? "").split(/\s+/).map(Number);
    expect(exposed.sort()).toEqual(
      [port(env.LATCHKEY_GRPC_LISTEN ?? ""), port(env.LATCHKEY_HTTP_LISTEN ?? "")].sort(),
    );
    // The same program `npm start` runs, as PID 1 in exec form (so it receives SIGTERM).
    const start = (JSON.parse(read("package.json")) as { scripts: { start: string } }).scripts
      .start;
    const cmd = JSON.parse(body.find((i) => i.op === "CMD")?.args ?? "[]") as string[];
    expect(start).toContain(cmd.join(" "));
  });

  it("sets only variables that the README's configuration table documents", () => {
    const documented = readmeVariables();
    const names = Object.keys(envOf(runtime?.body ?? [])).filter((n) => n !== "NODE_ENV");
    expect(names.length).toBeGreaterThan(0);
    expect(names.filter((n) => !documented.has(n))).toEqual([]);
  });
});

describe("docker-compose.yml", () => {
  const { postgres, redis, latchkey } = compose.services;

  it("builds latchkey from the Dockerfile next to Postgres 16 and Redis 7, all with health checks", () => {
    expect(latchkey?.build).toBe(".");
    expect(postgres?.image).toBe("postgres:16");
    expect(redis?.image).toBe("redis:7");
    expect(postgres?.healthcheck?.test).toContain("pg_isready");
    expect(redis?.healthcheck?.test).toContain("ping");
    expect(latchkey?.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
    });
  });

  it("uses documented variables, and its URLs and ports agree with the other services", () => {
    const env = latchkey?.environment ?? {};
    const documented = readmeVariables();
    expect(Object.keys(env).filter((n) => !documented.has(n))).toEqual([]);
    const db = new URL(env.DATABASE_URL ?? "");
    const pgEnv = postgres?.environment ?? {};
    expect(db.hostname).toBe("postgres");
    expect(db.username).toBe(pgEnv.POSTGRES_USER);
    expect(db.password).toBe(pgEnv.POSTGRES_PASSWORD);
    expect(db.pathname).toBe(`/${pgEnv.POSTGRES_DB}`);
    expect(new URL(env.REDIS_URL ?? "").hostname).toBe("redis");
    const published = (latchkey?.ports ?? []).map((p) => port(p));
    expect(published.sort()).toEqual(
      [port(env.LATCHKEY_GRPC_LISTEN ?? ""), port(env.LATCHKEY_HTTP_LISTEN ?? "")].sort(),
    );
    // Long enough for latchkey's own 8 s graceful-stop deadline.
    expect(Number.parseInt(latchkey?.stop_grace_period ?? "0", 10)).toBeGreaterThanOrEqual(9);
  });

  it("agrees with the README's Container section", () => {
    const readme = read("README.md");
    const section = readme.slice(readme.indexOf("## Container"));
    const text = section.slice(0, section.indexOf("\n## ", 5));
    expect(text).toContain("docker compose up --build");
    for (const p of latchkey?.ports ?? []) expect(text).toContain(p.slice(0, p.lastIndexOf(":")));
    expect(text).toContain("/readyz");
  });
});
