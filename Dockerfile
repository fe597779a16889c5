# syntax=docker/dockerfile:1
# latchkey's container image. Build: docker build -t latchkey .
# Run it with a Postgres (DATABASE_URL is required in the image) and optionally Redis;
# docker-compose.yml does both. The embedded Postgres of `npm start` is not in the image.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript with the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
# npm ci's postinstall guards postgres.js against a crash on a connection lost mid-transaction.
COPY scripts/patch-postgres.mjs scripts/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.image.json ./
COPY src src
RUN node_modules/.bin/tsc -p tsconfig.image.json

# ---- runtime: production dependencies and the compiled output only ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    LATCHKEY_GRPC_LISTEN=0.0.0.0:50051 \
    LATCHKEY_HTTP_LISTEN=0.0.0.0:8080 \
    LATCHKEY_LOG_LEVEL=info
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
COPY scripts/patch-postgres.mjs scripts/
# --omit=optional leaves out the embedded Postgres binaries (about 100 MB): the image needs
# DATABASE_URL. npm's cache is dropped so the layer holds only node_modules.
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY migrations migrations
COPY --from=build /app/dist dist
# The image's own user (uid 1000 in the node images), never root.
USER node
EXPOSE 50051 8080
# /readyz: Postgres reachable, migrations applied, Redis reachable where configured.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# latchkey drains both listeners, flushes usage and audit rows, then exits on SIGTERM.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
