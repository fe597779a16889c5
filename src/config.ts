/**
 * The server's configuration: the environment, read and validated once. The pieces live in
 * src/config/ (types, value readers, host:port, lists, TLS/mTLS, Redis targets, assembly);
 * this entry re-exports them, and `loadConfig` is the only place process.env is read.
 */
import { buildConfig } from "./config/load.js";
import type { Config, Env } from "./config/types.js";

export { formatHostPort, parseHostPort } from "./config/host-port.js";
export { redisTarget } from "./config/redis.js";
export {
  type AuditMode,
  type ClientAuthMode,
  type Config,
  ConfigError,
  type ListenAddress,
  type RedisAuth,
  type RedisTarget,
} from "./config/types.js";

/**
 * Reads and validates the environment once. Nothing else in latchkey reads process.env, so
 * this is the one place that documents every knob. All problems are collected and reported
 * together, so an operator fixes a deployment in one round.
 */
export function loadConfig(env: Env = process.env): Config {
  return buildConfig(env);
}
