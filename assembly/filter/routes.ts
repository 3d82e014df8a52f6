// Which door serves a request, by its path: one line per door. A path no door serves is passed
// through untouched.
import { VAULT_AUDIT_PATH, VAULT_SECRETS_PATH } from "../contract";
import { AwsContainerDoor } from "../doors/aws-container";
import { AzureManagedIdentityDoor } from "../doors/azure-managed-identity";
import { Door } from "../doors/door";
import { GceMetadataDoor } from "../doors/gce-metadata";
import { HexrJsonDoor } from "../doors/hexr-json";
import { VaultDoor } from "../doors/vault";
import { GCE_METADATA_PREFIX } from "../input/config";
import { RevocationEndpoint } from "../revocation/admin";
import { pathMatchesAt, pathStartsWithAt, pathWithinAt } from "../util/ascii";
import { FilterState } from "./state";

/** The door for the request path at path[0, size), or null. */
export function openDoor(state: FilterState, path: usize, size: i32, contextId: u32): Door | null {
  const config = state.config;
  if (pathMatchesAt(path, size, config.exchangePath)) return new HexrJsonDoor(state, contextId);
  const aws = config.awsContainer;
  if (aws !== null && pathMatchesAt(path, size, aws.path)) return new AwsContainerDoor(state, contextId, aws);
  const gce = config.gceMetadata;
  if (gce !== null && (pathMatchesAt(path, size, "/") || pathStartsWithAt(path, size, GCE_METADATA_PREFIX))) {
    return new GceMetadataDoor(state, contextId, gce);
  }
  const azure = config.azureManagedIdentity;
  if (azure !== null && pathMatchesAt(path, size, azure.path)) return new AzureManagedIdentityDoor(state, contextId, azure);
  const revocation = config.revocation;
  if (revocation !== null && pathMatchesAt(path, size, revocation.path)) return new RevocationEndpoint(state, contextId, revocation);
  if (config.vault && (pathWithinAt(path, size, VAULT_SECRETS_PATH) || pathWithinAt(path, size, VAULT_AUDIT_PATH))) return new VaultDoor(state, contextId);
  return null;
}
