// A trap inside the filter (here the contract's debug_trap_path, which runs `unreachable`) is a
// distinct failure: the driver call throws WasmTrap, the VM is failed for good, and the host, its
// shared data and the other VMs carry on — as with Envoy's FAIL_RELOAD (the reload itself is not emulated).

import { describe, expect, it } from "vitest";
import { VmFailed, WasmTrap } from "./host/index.ts";
import { AGENT, cacheKey, cacheValue, credential, expectCachedReply, sendExchange, startFilter } from "./support/exchange.ts";

describe("a trap in the filter", () => {
  it("surfaces as WasmTrap and fails only that VM", () => {
    const { host, vm } = startFilter({ debug_trap_path: "/__trap" });
    const other = host.startVm();
    let trap: unknown;
    try {
      sendExchange(vm, { path: "/__trap" });
    } catch (error) {
      trap = error;
    }
    expect(trap).toBeInstanceOf(WasmTrap);
    expect(["proxy_on_request_headers", "proxy_on_request_body"]).toContain((trap as WasmTrap).callback);
    expect((trap as WasmTrap).fault).toBeInstanceOf(WebAssembly.RuntimeError);
    expect(vm.failed).toBe(trap);
    expect(() => sendExchange(vm)).toThrow(VmFailed);

    const issued = credential({ expiresAt: host.clock.nowSeconds + 3600 });
    host.sharedData.write(cacheKey(AGENT.dataPipeline, "aws_s3", "us-east-1"), cacheValue(issued));
    expect(other.failed).toBeUndefined();
    expectCachedReply(sendExchange(other), "L1", issued);
  });

  it("does not trap on the trap path unless it is configured", () => {
    const { vm } = startFilter();
    expect(sendExchange(vm, { path: "/__trap" }).forwardedRequest?.ended).toBe(true);
  });
});
