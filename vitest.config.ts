import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Starts (or reaches) Postgres once and builds a migrated template database; every
    // integration test file clones its own database from it (test/helpers/postgres.ts).
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks",
    fileParallelism: true,
    // vitest defaults to cores - 1 (one worker on 2 cores); integration files mostly wait on
    // Postgres, Redis and sockets, so one worker per core is the better fit.
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
