import { defineConfig } from "vitest/config";

// One runner for every suite. Suites that start real servers pick free loopback ports, so files
// can run side by side; the machine has 2 cores, hence at most 2 test files at once.
export default defineConfig({
  test: {
    include: ["host-test/**/*.test.ts", "injector/**/*.test.ts", "bridge/**/*.test.ts", "vault/**/*.test.ts", "e2e/**/*.test.ts", "scripts/**/*.test.ts", "stack/**/*.test.ts", "support/**/*.test.ts", "sdk/typescript/test/**/*.test.ts", "examples/typescript/**/*.test.ts", "deploy/docker/**/*.test.ts", "deploy/dashboard/**/*.test.ts", "deploy/test/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 180_000,
    reporters: ["default"],
  },
});
