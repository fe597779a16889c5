import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { TokenAdminService } from "../../src/gen/latchkey/v1/token_admin_service_pb.js";

/** TokenAdminService as the browser calls it. */
export type Admin = Client<typeof TokenAdminService>;

/**
 * A TokenAdminService client over the Connect protocol (JSON) on the page's own origin — the
 * same API and authorization every other client uses; the console has no back door.
 */
export function adminClient(token: string): Admin {
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createConnectTransport({
    baseUrl: window.location.origin,
    interceptors: [bearer],
  });
  return createClient(TokenAdminService, transport);
}
