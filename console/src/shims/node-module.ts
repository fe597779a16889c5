import ipaddr from "ipaddr.js";

/**
 * Browser stand-in for `node:module`, so the console bundles the server's own CIDR rules
 * (src/domain/cidr.ts loads ipaddr.js through createRequire) and validates allowlists as typed
 * exactly as CreateToken will. Only ipaddr.js can be required.
 */
export function createRequire(_from: string | URL): (id: string) => unknown {
  return (id) => {
    if (id === "ipaddr.js") return ipaddr;
    throw new Error(`${id} is not available in the browser`);
  };
}
