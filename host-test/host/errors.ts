// Failures the host reports to the test, each its own class so a test can tell a guest fault
// from its own misuse of the driver.

/** The guest trapped (unreachable, out-of-bounds access, stack overflow ...) or called proc_exit. */
export class WasmTrap extends Error {
  constructor(
    /** The ABI callback (or startup function) that was running. */
    readonly callback: string,
    readonly vmIndex: number,
    /** The RuntimeError, RangeError or GuestExit that ended the call. */
    readonly fault: unknown,
    /** What the guest wrote to stderr before failing (an AssemblyScript abort message lands here). */
    readonly stderr: string,
  ) {
    const reason = fault instanceof Error ? fault.message : String(fault);
    super(`VM ${vmIndex} trapped in ${callback}: ${reason}${stderr ? `\nguest stderr: ${stderr}` : ""}`);
    this.name = "WasmTrap";
  }
}

/** proc_exit, raised inside the guest call so that the call unwinds. */
export class GuestExit extends Error {
  constructor(readonly code: number) {
    super(`guest called proc_exit(${code})`);
    this.name = "GuestExit";
  }
}

/** A VM that trapped earlier was used again; Envoy would fail every later request on it. */
export class VmFailed extends Error {
  constructor(readonly vmIndex: number, readonly trap: WasmTrap) {
    super(`VM ${vmIndex} failed earlier: ${trap.message}`);
    this.name = "VmFailed";
  }
}

/** The module cannot be loaded as Envoy would load it (missing ABI marker, unknown import ...). */
export class ModuleRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModuleRejected";
  }
}

/** The test drove the host in a way a proxy never would (e.g. a response before the request was forwarded). */
export class HostMisuse extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostMisuse";
  }
}
