// --- Redis Sentinel and Cluster (issue #11 item 6) ---
import { parseHostPort } from "./host-port.js";
import type { ListenAddress, RedisTarget } from "./types.js";

const SENTINEL_URL =
  /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([^/?#]+)(?:\/(\d{1,5}))?\/?(?:\?([^#]*))?$/;

/**
 * Parses REDIS_URL and LATCHKEY_REDIS_CLUSTER_NODES into one target, reporting problems in
 * `problems` (never echoing the URL: it may hold a password). Exported because the verifier
 * also accepts a connection string and must read it exactly as the configuration does.
 *
 * - `redis[s]://…` (or `valkey[s]://`): one server.
 * - `redis[s]+sentinel://[user:pass@]h:p,h:p/master[/db][?sentinelPassword=…]`: a Sentinel set
 *   (port 26379 when omitted); `rediss+` is TLS to the sentinels and the master.
 * - LATCHKEY_REDIS_CLUSTER_NODES `h:p,h:p`: seed nodes of a Redis Cluster. REDIS_URL may then
 *   be set too, as a plain `redis[s]://` URL without a database: it lends its user, password
 *   and TLS to every node and its host is one more seed. A Sentinel URL with it is an error.
 */
export function redisTarget(
  url: string | undefined,
  clusterNodes: string | undefined,
  problems: string[],
): RedisTarget | undefined {
  const sentinel = url === undefined ? null : SENTINEL_URL.exec(url);
  if (url !== undefined && /^[a-z]+\+sentinel:/i.test(url)) {
    if (clusterNodes !== undefined) {
      problems.push(
        "LATCHKEY_REDIS_CLUSTER_NODES: cannot be combined with a Sentinel REDIS_URL; use one or the other",
      );
    }
    if (sentinel === null) {
      problems.push(
        "REDIS_URL: expected redis+sentinel://[user:password@]host:port,host:port/master-name[/db]",
      );
      return undefined;
    }
    return sentinelTarget(sentinel, problems);
  }
  let plain: URL | undefined;
  if (url !== undefined) {
    try {
      plain = new URL(url);
    } catch {
      problems.push("REDIS_URL: not a valid URL (expected redis://…)");
      return undefined;
    }
    if (!["redis:", "rediss:", "valkey:", "valkeys:"].includes(plain.protocol)) {
      problems.push(
        `REDIS_URL: expected a redis, rediss, valkey, valkeys, redis+sentinel or rediss+sentinel URL, got scheme "${plain.protocol.replace(/:$/, "")}"`,
      );
      return undefined;
    }
  }
  const tls = plain?.protocol === "rediss:" || plain?.protocol === "valkeys:";
  if (clusterNodes === undefined)
    return url === undefined ? undefined : { kind: "standalone", url, tls };
  const nodes = redisNodes("LATCHKEY_REDIS_CLUSTER_NODES", clusterNodes, undefined, problems);
  if (plain !== undefined && !/^\/?0?$/.test(plain.pathname)) {
    problems.push("REDIS_URL: a Redis Cluster has only database 0; drop the /db path");
  }
  if (plain?.hostname)
    nodes.push({ host: plain.hostname.replace(/^\[|\]$/g, ""), port: Number(plain.port || 6379) });
  return {
    kind: "cluster",
    nodes,
    username: plain?.username ? decodeURIComponent(plain.username) : undefined,
    password: plain?.password ? decodeURIComponent(plain.password) : undefined,
    tls,
  };
}

function sentinelTarget(m: RegExpExecArray, problems: string[]): RedisTarget | undefined {
  const [, scheme, userinfo, hosts = "", name = "", db = "0", query = ""] = m;
  const sentinels = redisNodes("REDIS_URL", hosts, 26379, problems);
  const colon = userinfo?.indexOf(":") ?? -1;
  const decode = (s: string | undefined): string | undefined =>
    s === undefined || s === "" ? undefined : decodeURIComponent(s);
  let sentinelPassword: string | undefined;
  for (const [k, v] of new URLSearchParams(query)) {
    if (k === "sentinelPassword") sentinelPassword = v === "" ? undefined : v;
    else problems.push(`REDIS_URL: unknown parameter "${k}" (known: sentinelPassword)`);
  }
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(name)) {
    problems.push("REDIS_URL: the Sentinel master name must be letters, digits and . _ -");
  }
  return {
    kind: "sentinel",
    sentinels,
    name,
    db: Number(db),
    username: decode(colon < 0 ? userinfo : userinfo?.slice(0, colon)),
    password: decode(colon < 0 ? undefined : userinfo?.slice(colon + 1)),
    tls: scheme === "rediss",
    sentinelPassword,
  };
}

/** `host:port,host:port` (port optional when `defaultPort` is given); every entry checked. */
function redisNodes(
  name: string,
  raw: string,
  defaultPort: number | undefined,
  problems: string[],
): ListenAddress[] {
  const out: ListenAddress[] = [];
  for (const entry of raw.split(",").map((e) => e.trim())) {
    const withPort =
      defaultPort !== undefined && !/:\d+$/.test(entry) ? `${entry}:${defaultPort}` : entry;
    const a = parseHostPort(withPort);
    if (a === undefined || a.port === 0 || entry.startsWith(":")) {
      problems.push(`${name}: "${entry}" is not host:port (e.g. 10.0.0.5:6379)`);
    } else if (!out.some((o) => o.host === a.host && o.port === a.port)) out.push(a);
  }
  return out;
}
