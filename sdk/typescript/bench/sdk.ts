// What the benchmark takes from the SDK (its source, as the tests do).
export { HexrClient } from "../src/client.ts";
export { FileJwtSvidSource } from "../src/identity.ts";
import { REGIONS } from "../src/contract.ts";
export const CONTRACT_REGIONS_AWS: readonly string[] = REGIONS.aws;
