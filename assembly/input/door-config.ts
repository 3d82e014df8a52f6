// The configuration of the stock-SDK doors (doors/aws-container.ts, gce-metadata.ts,
// azure-managed-identity.ts): each section is optional, and a door whose section is absent is
// closed. What the SDKs' protocols do not carry (which service, the project, the service account's
// name) comes from here, never from the request beyond the few query parameters each door reads.
import { AZURE_RESOURCE_SERVICES, AZURE_RESOURCES } from "../contract";
import { JsonKind, JsonValue } from "../util/json";
import { message } from "../util/message";
import { providerOf } from "./catalog";
import { itemName, Reader } from "./config-reader";

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

export function readAwsContainerDoor(root: JsonValue, services: string[], read: Reader): AwsContainerDoorConfig | null {
  const section = sectionOf(root, message("aws_container"), read);
  if (section === null) return null;
  const door = new AwsContainerDoorConfig();
  door.path = readPath(section, door.path, read);
  door.service = readService(section, door.service, "aws", services, read);
  read.section = "";
  return door;
}

export function readGceMetadataDoor(root: JsonValue, services: string[], read: Reader): GceMetadataDoorConfig | null {
  const section = sectionOf(root, message("gce_metadata"), read);
  if (section === null) return null;
  const door = new GceMetadataDoorConfig();
  door.service = readService(section, door.service, "gcp", services, read);
  const projectId = message("project_id");
  door.projectId = read.stringField(section, projectId, "");
  if (!isPlainText(door.projectId, false)) read.fail(projectId, message("is required: letters, digits, '-', '.', ':'"));
  const numericField = message("numeric_project_id");
  const numeric = read.member(section, numericField);
  if (numeric !== null) {
    door.numericProjectId = read.string(numeric, numericField, "");
    if (!isDigits(door.numericProjectId)) read.fail(numericField, message("must be digits"));
  }
  const email = message("service_account_email");
  door.serviceAccountEmail = read.stringField(section, email, door.serviceAccountEmail);
  if (!isPlainText(door.serviceAccountEmail, true)) read.fail(email, message("must be an email address or 'default'"));
  const universe = message("universe_domain");
  door.universeDomain = read.stringField(section, universe, door.universeDomain);
  if (!isPlainText(door.universeDomain, false)) read.fail(universe, message("must be a domain name"));
  const scopes = read.member(section, "scopes");
  if (scopes !== null) {
    door.scopes = read.strings(scopes, "scopes");
    for (let i = 0; i < door.scopes.length; i++) {
      if (!isPlainText(door.scopes[i], false)) read.fail(itemName("scopes", i), message("must be a scope URL"));
    }
  }
  read.section = "";
  return door;
}

export function readAzureManagedIdentityDoor(root: JsonValue, services: string[], read: Reader): AzureManagedIdentityDoorConfig | null {
  const section = sectionOf(root, message("azure_managed_identity"), read);
  if (section === null) return null;
  const door = new AzureManagedIdentityDoorConfig();
  door.path = readPath(section, door.path, read);
  const identityHeader = message("identity_header");
  door.identityHeader = read.stringField(section, identityHeader, "");
  if (door.identityHeader.length < MIN_IDENTITY_HEADER || !isPlainText(door.identityHeader, false)) {
    read.fail(identityHeader, message("is required: a secret of at least 16 letters, digits, '-', '.', ':'"));
  }
  readAzureResources(section, door, services, read);
  read.section = "";
  return door;
}

/** Entra ID resources beyond the contract's, each for a configured azure service. */
function readAzureResources(section: JsonValue, door: AzureManagedIdentityDoorConfig, services: string[], read: Reader): void {
  const name = message("resources");
  const extra = read.member(section, name);
  if (extra === null) return;
  if (extra.kind != JsonKind.Object) {
    read.fail(name, message("must be an object of service to Entra ID resource URL"));
    return;
  }
  for (let i = 0; i < extra.keys.length; i++) {
    const field = name + "." + extra.keys[i];
    const service = extra.keys[i];
    if (providerOf(service) != "azure" || !services.includes(service)) read.fail(field, message("must name an azure service of the catalog or extra_services"));
    const resource = read.string(extra.items[i], field, "");
    if (!resource.startsWith("https://") || resource.endsWith("/") || !isPlainText(resource, false)) {
      read.fail(field, message("must be an https:// resource URL without a trailing '/'"));
    }
    door.resources.push(resource);
    door.resourceServices.push(service);
  }
}

/** The door's section `name` of `root` when it is there (an object), and then `read` is in it; null when closed. */
function sectionOf(root: JsonValue, name: string, read: Reader): JsonValue | null {
  const value = read.member(root, name);
  if (value === null || value.kind == JsonKind.Null) return null;
  if (value.kind == JsonKind.Object) {
    read.section = name + ".";
    return value;
  }
  read.fail(name, message("must be an object or null"));
  return null;
}

function readPath(section: JsonValue, fallback: string, read: Reader): string {
  const field = message("path");
  const path = read.stringField(section, field, fallback);
  if (!path.startsWith("/") || path.includes("?")) read.fail(field, message("must start with '/' and have no query"));
  return path;
}

function readService(section: JsonValue, fallback: string, provider: string, services: string[], read: Reader): string {
  const service = read.stringField(section, "service", fallback);
  if (providerOf(service) != provider || !services.includes(service)) read.fail("service", message("must name a ") + provider + message(" service of the catalog or extra_services"));
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
