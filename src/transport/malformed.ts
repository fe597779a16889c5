/**
 * Stands in for a request message whose bytes could not be decoded. The listeners' decoders
 * return (never throw) it, so grpc-js and connect-node do not answer on their own (grpc-js says
 * INTERNAL, connect-node INTERNAL for binary): the RPC adapter sees the marker, answers
 * MALFORMED_REQUEST through the one error mapper and counts the call like any other. Bad input
 * is the client's business, so nothing about it is logged (a flood must not fill the log).
 */
export class MalformedRequest {}

/** The one marker instance (it carries nothing). */
export const MALFORMED = new MalformedRequest();
