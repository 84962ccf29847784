import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests each use their own database and stream keys, so files may run in parallel;
    // two workers fit this 2-core machine without starving PostgreSQL and Redis.
    maxWorkers: 2,
    minWorkers: 1
  }
})
