// The bridge's Prometheus metrics (bridge/metrics.ts): off unless --metrics-port is given; then a
// plain-HTTP listener of its own serves GET /metrics, with requests counted by operation and status,
// revocations and purged keys, and never a key, an identity or a value.
import { describe, expect, it } from "vitest";
import { parseCliOptions } from "../cli-options.ts";
import { startValkey } from "../../support/valkey.ts";
import { credKey, credentialValue, startTestBridge } from "./helpers.ts";

describe("GET /metrics", () => {
  it("is off by default, and counts requests by operation and status, revocations and purged keys, with no key or value", async () => {
    const required = ["--tls-cert", "c", "--tls-key", "k", "--trust-bundle", "b", "--access-file", "a", "--valkey-password-file", "p", "--key-file", "f"];
    expect(parseCliOptions(required, {}).metrics).toBeUndefined();
    expect(parseCliOptions([...required, "--metrics-port", "9465"], {}).metrics).toEqual({ host: "127.0.0.1", port: 9465 });
    expect(parseCliOptions(required, { HEXR_BRIDGE_METRICS_PORT: "0", HEXR_BRIDGE_METRICS_HOST: "0.0.0.0" }).metrics).toEqual({ host: "0.0.0.0", port: 0 });

    const valkey = await startValkey();
    const bridge = await startTestBridge({ valkey: valkey.url, users: valkey.users, metrics: { host: "127.0.0.1", port: 0 } });
    try {
      expect(bridge.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const key = credKey("metrics-tenant", "agent");
      const value = credentialValue(`secret-${Date.now()}`);
      expect((await bridge.api.get(key)).status).toBe(404);
      expect((await bridge.api.put(key, value)).status).toBe(204);
      expect((await bridge.api.get(key)).status).toBe(200);
      expect((await bridge.api.revoke({ prefix: "cred:spiffe://hexr.test/agent/metrics-tenant/" })).status).toBe(200);

      const scrape = await fetch(bridge.metricsUrl!);
      expect(scrape.status).toBe(200);
      const text = await scrape.text();
      expect(text).toMatch(/^hexr_bridge_requests_total\{operation="cred_get",status="404"\} 1$/m);
      expect(text).toMatch(/^hexr_bridge_requests_total\{operation="cred_get",status="200"\} 1$/m);
      expect(text).toMatch(/^hexr_bridge_requests_total\{operation="cred_put",status="204"\} 1$/m);
      expect(text).toMatch(/^hexr_bridge_requests_total\{operation="revoke",status="200"\} 1$/m);
      expect(text).toMatch(/^hexr_bridge_revocations_total 1$/m);
      expect(text).toMatch(/^hexr_bridge_purged_keys_total\{reason="revocation"\} 1$/m);
      expect(text).toMatch(/^hexr_bridge_valkey_errors_total\{operation="cred_get"\} 0$/m);
      expect(text).toMatch(/^hexr_bridge_request_duration_seconds_count\{operation="cred_get"\} 2$/m);
      expect(text).not.toContain("metrics-tenant");
      expect(text).not.toContain("spiffe://");
      expect(text.includes(value)).toBe(false);
    } finally {
      await bridge.close();
      await valkey.stop();
    }
  });
});
