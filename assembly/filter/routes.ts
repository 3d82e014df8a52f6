// Which door serves a request, by its path: one line per door. A path no door serves is passed
// through untouched.
import { Door } from "../doors/door";
import { HexrJsonDoor } from "../doors/hexr-json";
import { RevocationEndpoint } from "../revocation/admin";
import { pathMatchesAt } from "../util/ascii";
import { FilterState } from "./state";

/** The door for the request path at path[0, size), or null. */
export function openDoor(state: FilterState, path: usize, size: i32, contextId: u32): Door | null {
  const config = state.config;
  if (pathMatchesAt(path, size, config.exchangePath)) return new HexrJsonDoor(state, contextId);
  const revocation = config.revocation;
  if (revocation !== null && pathMatchesAt(path, size, revocation.path)) return new RevocationEndpoint(state, contextId);
  return null;
}
