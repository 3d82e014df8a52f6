// The configuration of the stock-SDK doors (doors/aws-container.ts, gce-metadata.ts,
// azure-managed-identity.ts): each section is optional, and a door whose section is absent is
// closed. What the SDKs' protocols do not carry (which service, the project, the service account's
// name) comes from here, never from the request beyond the few query parameters each door reads.
import { AZURE_RESOURCE_SERVICES, AZURE_RESOURCES } from "../contract";
import { JsonKind, JsonValue } from "../util/json";
import { providerOf } from "./catalog";
import { Reader } from "./config-reader";

export class AwsContainerDoorConfig {
  path: string = "/v1/aws/credentials";
  /** The service when the URI names none (?service=): its session policy bounds the credentials. */
  service: string = "aws_s3";
}

export class GceMetadataDoorConfig {
  service: string = "gcp_storage";
  projectId: string = "";
  numericProjectId: string = "";
  /** The name the SDKs see for the default service account (they put it in token paths). */
  serviceAccountEmail: string = "default";
  universeDomain: string = "googleapis.com";
  scopes: string[] = ["https://www.googleapis.com/auth/cloud-platform"];
}

export class AzureManagedIdentityDoorConfig {
  path: string = "/metadata/identity/oauth2/token";
  /** The value every request must carry in X-IDENTITY-HEADER (App Service's SSRF guard). */
  identityHeader: string = "";
  /** Entra ID resources and their services, side by side: the contract's, then configured ones. */
  resources: string[] = AZURE_RESOURCES.slice(0);
  resourceServices: string[] = AZURE_RESOURCE_SERVICES.slice(0);
}

/** The shortest X-IDENTITY-HEADER accepted: it is a shared secret, not a label. */
const MIN_IDENTITY_HEADER = 16;

export function readAwsContainerDoor(value: JsonValue | null, services: string[], read: Reader): AwsContainerDoorConfig | null {
  if (!isSection(value, "aws_container", read)) return null;
  const door = new AwsContainerDoorConfig();
  const section = value!;
  door.path = readPath(section, "aws_container.path", door.path, read);
  door.service = readService(section, "aws_container.service", door.service, "aws", services, read);
  return door;
}

export function readGceMetadataDoor(value: JsonValue | null, services: string[], read: Reader): GceMetadataDoorConfig | null {
  if (!isSection(value, "gce_metadata", read)) return null;
  const door = new GceMetadataDoorConfig();
  const section = value!;
  door.service = readService(section, "gce_metadata.service", door.service, "gcp", services, read);
  door.projectId = read.string(section.member("project_id"), "gce_metadata.project_id", "");
  if (!isPlainText(door.projectId, false)) read.fail("gce_metadata.project_id", "is required: letters, digits, '-', '.', ':'");
  const numeric = section.member("numeric_project_id");
  if (numeric !== null) {
    door.numericProjectId = read.string(numeric, "gce_metadata.numeric_project_id", "");
    if (!isDigits(door.numericProjectId)) read.fail("gce_metadata.numeric_project_id", "must be digits");
  }
  door.serviceAccountEmail = read.string(section.member("service_account_email"), "gce_metadata.service_account_email", door.serviceAccountEmail);
  if (!isPlainText(door.serviceAccountEmail, true)) read.fail("gce_metadata.service_account_email", "must be an email address or 'default'");
  door.universeDomain = read.string(section.member("universe_domain"), "gce_metadata.universe_domain", door.universeDomain);
  if (!isPlainText(door.universeDomain, false)) read.fail("gce_metadata.universe_domain", "must be a domain name");
  const scopes = section.member("scopes");
  if (scopes !== null) {
    door.scopes = read.strings(scopes, "gce_metadata.scopes");
    for (let i = 0; i < door.scopes.length; i++) {
      if (!isPlainText(door.scopes[i], false)) read.fail("gce_metadata.scopes[" + i.toString() + "]", "must be a scope URL");
    }
  }
  return door;
}

export function readAzureManagedIdentityDoor(value: JsonValue | null, services: string[], read: Reader): AzureManagedIdentityDoorConfig | null {
  if (!isSection(value, "azure_managed_identity", read)) return null;
  const door = new AzureManagedIdentityDoorConfig();
  const section = value!;
  door.path = readPath(section, "azure_managed_identity.path", door.path, read);
  door.identityHeader = read.string(section.member("identity_header"), "azure_managed_identity.identity_header", "");
  if (door.identityHeader.length < MIN_IDENTITY_HEADER || !isPlainText(door.identityHeader, false)) {
    read.fail("azure_managed_identity.identity_header", "is required: a secret of at least 16 letters, digits, '-', '.', ':'");
  }
  const extra = section.member("resources");
  if (extra === null) return door;
  if (extra.kind != JsonKind.Object) {
    read.fail("azure_managed_identity.resources", "must be an object of service to Entra ID resource URL");
    return door;
  }
  for (let i = 0; i < extra.keys.length; i++) {
    const field = "azure_managed_identity.resources." + extra.keys[i];
    const service = extra.keys[i];
    if (providerOf(service) != "azure" || !services.includes(service)) read.fail(field, "must name an azure service of the catalog or extra_services");
    const resource = read.string(extra.items[i], field, "");
    if (!resource.startsWith("https://") || resource.endsWith("/") || !isPlainText(resource, false)) {
      read.fail(field, "must be an https:// resource URL without a trailing '/'");
    }
    door.resources.push(resource);
    door.resourceServices.push(service);
  }
  return door;
}

function isSection(value: JsonValue | null, field: string, read: Reader): bool {
  if (value === null || value.kind == JsonKind.Null) return false;
  if (value.kind == JsonKind.Object) return true;
  read.fail(field, "must be an object or null");
  return false;
}

function readPath(section: JsonValue, field: string, fallback: string, read: Reader): string {
  const path = read.string(section.member("path"), field, fallback);
  if (!path.startsWith("/") || path.includes("?")) read.fail(field, "must start with '/' and have no query");
  return path;
}

function readService(section: JsonValue, field: string, fallback: string, provider: string, services: string[], read: Reader): string {
  const service = read.string(section.member("service"), field, fallback);
  if (providerOf(service) != provider || !services.includes(service)) read.fail(field, "must name a " + provider + " service of the catalog or extra_services");
  return service;
}

/**
 * Letters, digits and - . : / (and @ + _ for addresses): the door writes these values into its
 * answers as they are, so nothing that needs escaping in JSON or in a header may get in.
 */
function isPlainText(text: string, address: bool): bool {
  if (text.length == 0 || text.length > 256) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const alphanumeric = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    const punctuation = c == 0x2d || c == 0x2e || c == 0x3a || c == 0x2f || c == 0x5f;
    if (!alphanumeric && !punctuation && !(address && (c == 0x40 || c == 0x2b))) return false;
  }
  return true;
}

function isDigits(text: string): bool {
  if (text.length == 0 || text.length > 20) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
