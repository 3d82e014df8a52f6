// Which door serves a request, by its path: one line per door. A path no door serves is passed
// through untouched.
import { Door } from "../doors/door";
import { HexrJsonDoor } from "../doors/hexr-json";
import { RevocationEndpoint } from "../revocation/admin";
import { pathMatches } from "../util/ascii";
import { FilterState } from "./state";

export function openDoor(state: FilterState, path: ArrayBuffer, contextId: u32): Door | null {
  const config = state.config;
  if (pathMatches(path, config.exchangePath)) return new HexrJsonDoor(state, contextId);
  const revocation = config.revocation;
  if (revocation !== null && pathMatches(path, revocation.path)) return new RevocationEndpoint(state, contextId);
  return null;
}
