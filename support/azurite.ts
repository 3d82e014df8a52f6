// The real Azurite (Azure Storage's emulator, npm `azurite`), blob service only, on loopback, with
// OAuth on: an SDK that talks to it must present a bearer token, as against Azure Storage.
//
//   --oauth basic          bearer tokens accepted (Shared Key and SAS too; a request with no
//                          Authorization header at all is refused 403 AuthorizationFailure)
//   --cert / --key         HTTPS, which `--oauth basic` requires (a bearer token over HTTP is
//                          refused): the dev CA's listener certificate (localhost, 127.0.0.1, from
//                          support/dev-identity.ts); clients trust `caFile` (see clientTrustEnv)
//   --inMemoryPersistence  nothing on disk (so no --location: Azurite refuses the two together)
//   --skipApiVersionCheck  current SDKs send a newer x-ms-version than the emulator knows
//   --disableTelemetry     no Application Insights (it has no update check); --loose stays off
//
// What `--oauth basic` accepts (Azurite's src/blob/authentication/BlobTokenAuthenticator.ts,
// authenticateBasic): `Authorization: Bearer <JWT>` over HTTPS, the JWT *decoded without checking
// its signature*, and accepted when
//   - `iat`, `nbf` and `exp` are all present, and nbf <= now <= exp;
//   - `iss` starts with https://sts.windows.net/ (or https://sts.microsoftonline.de/,
//     https://sts.chinacloudapi.cn/, https://sts.windows-ppe.net);
//   - `aud` is exactly https://storage.azure.com (a trailing / allowed), the storage app ID
//     e406a681-f3d4-42a8-90b6-c2b029497af1, or https://{account}.blob.core.windows.net[/] naming
//     the account of the request (devstoreaccount1).
// No scope or role is checked. So a test learns nothing here about *who* a token names: only that
// it is a well-formed, current, storage-audience token (what Entra ID issues for a managed
// identity's https://storage.azure.com/.default). basicOAuthToken() makes one.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ensureDevIdentity } from "./dev-identity.ts";
import { freePort, startProcess, type ProcessSpec, type RunningProcess } from "./processes.ts";
import { projectRoot } from "./tools.ts";

/** Azurite's one built-in account (its well-known key is public: it is not a secret). */
export const AZURITE_ACCOUNT = "devstoreaccount1";

export interface AzuriteBlob {
  port: number;
  /** https://127.0.0.1:PORT */
  url: string;
  /** https://127.0.0.1:PORT/devstoreaccount1: the account URL for BlobServiceClient. */
  accountUrl: string;
  /** The CA (PEM) that Azurite's certificate chains to. */
  caFile: string;
  /**
   * The standard variables that make an SDK process trust `caFile`: REQUESTS_CA_BUNDLE (requests,
   * hence azure-core's default transport) and SSL_CERT_FILE (Python's ssl, aiohttp) for Python,
   * NODE_EXTRA_CA_CERTS for Node (read at process start: for child processes only).
   */
  clientTrustEnv(): Record<string, string>;
  /** Everything it wrote so far (its access log: method, path, status; no header). */
  output(): string;
  stop(): Promise<void>;
}

export interface AzuriteOptions {
  /** Dev identity material whose listener certificate Azurite serves; default .dev/. */
  identityDir?: string;
}

const BIND_ATTEMPTS = 3;
/** In-memory blob data limit: tests write a few bytes; the default is half the machine's memory. */
const EXTENT_MEMORY_LIMIT_MB = 256;

export function azuriteBlobScript(): string {
  return path.join(projectRoot, "node_modules", "azurite", "dist", "src", "blob", "main.js");
}

/**
 * How Azurite's blob service is started everywhere: `node .../blob/main.js` as one process (no
 * npx or shell in between), so SIGTERM reaches Azurite itself.
 */
export function azuriteBlobProcessSpec(port: number, tls: { cert: string; key: string }, dir: string): ProcessSpec {
  return {
    name: "azurite-blob",
    command: process.execPath,
    args: [
      azuriteBlobScript(),
      "--blobHost", "127.0.0.1",
      "--blobPort", String(port),
      "--oauth", "basic",
      "--cert", tls.cert,
      "--key", tls.key,
      "--inMemoryPersistence",
      "--extentMemoryLimit", String(EXTENT_MEMORY_LIMIT_MB),
      "--skipApiVersionCheck",
      "--disableTelemetry",
    ],
    cwd: dir,
    // The default account only, whatever the caller's environment says.
    env: { AZURITE_ACCOUNTS: "" },
    ready: { logLine: /Azurite Blob service successfully listens on https:\/\// },
    timeoutMs: 30_000,
  };
}

export async function startAzuriteBlob(options: AzuriteOptions = {}): Promise<AzuriteBlob> {
  const identity = await ensureDevIdentity(options.identityDir);
  const tls = { cert: identity.listenerCert, key: identity.listenerKey };
  const dir = await mkdtemp(path.join(tmpdir(), "hexr-azurite-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return handle(await startProcess(azuriteBlobProcessSpec(port, tls, dir)), port, identity.ca, dir);
    } catch (error) {
      if (attempt >= BIND_ATTEMPTS) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

function handle(process: RunningProcess, port: number, caFile: string, dir: string): AzuriteBlob {
  const url = `https://127.0.0.1:${port}`;
  return {
    port,
    url,
    accountUrl: `${url}/${AZURITE_ACCOUNT}`,
    caFile,
    clientTrustEnv: () => ({ REQUESTS_CA_BUNDLE: caFile, SSL_CERT_FILE: caFile, NODE_EXTRA_CA_CERTS: caFile }),
    output: () => process.output(),
    async stop() {
      await process.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A token `--oauth basic` accepts (see the top of this file): unsigned, since Azurite never checks
 * a signature, and for tests that inspect Azurite directly only. Never give it to an agent: an
 * agent must get its token from the sidecar.
 */
export function basicOAuthToken(options: { lifetimeSeconds?: number; audience?: string } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = {
    aud: options.audience ?? "https://storage.azure.com",
    iss: "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
    iat: now - 60,
    nbf: now - 60,
    exp: now + (options.lifetimeSeconds ?? 600),
    sub: "hexr-test-inspector",
  };
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.`;
}
