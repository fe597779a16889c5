/**
 * What a connection may cost the listeners while it does nothing useful. Without these a
 * client could open connections and never speak (or speak once and idle forever): every one of
 * them holds a socket and memory until the process runs out.
 */
export interface ConnectionLimits {
  /**
   * Time for a new connection's first bytes (HTTP listener: to tell HTTP/1.1 from HTTP/2, and the
   * TLS handshake) and for an HTTP/1.1 request's headers (ms).
   */
  readonly headerTimeoutMs: number;
  /** An HTTP/2 or gRPC connection with no open stream for this long is closed (GOAWAY) (ms). */
  readonly idleTimeoutMs: number;
  /** Concurrent streams one HTTP/2 or gRPC connection may open. */
  readonly maxConcurrentStreams: number;
}

/**
 * Defaults: 10 s is plenty for a client's first bytes and headers; 5 min idle keeps gateways'
 * pooled connections warm between bursts; 1000 streams per connection is far above what one
 * gateway multiplexes (h2load m=32 in the bench) and bounds what one connection can pin.
 */
export const DEFAULT_LIMITS: ConnectionLimits = {
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  maxConcurrentStreams: 1_000,
};
