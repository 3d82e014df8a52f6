// A stock @azure/identity agent: no Hexr code, no secret in its code or configuration.
// ManagedIdentityCredential (MSAL's ManagedIdentityApplication underneath) finds the App Service
// managed-identity protocol through the standard variables alone, and so gets its tokens from the
// sidecar's Azure door:
//
//   IDENTITY_ENDPOINT     the door (plain http, loopback)
//   IDENTITY_HEADER       the endpoint's secret, sent as X-IDENTITY-HEADER
//
// The token goes to Blob Storage through @azure/storage-blob's BlobServiceClient (bearer tokens
// need HTTPS: the endpoint's CA comes from NODE_EXTRA_CA_CERTS, as for any private CA).
//
// Inputs (environment): the two above; HEXR_TEST_BLOB_ACCOUNT_URL, the account URL (Azurite's
// https://127.0.0.1:PORT/devstoreaccount1 in tests); AGENT_CONTAINER (created if absent, default
// hexr-stock-blob-node).
//
// Run with plain `node` (no build step). Prints one JSON object on stdout, never a token: which
// managed-identity source MSAL chose (AppService for IDENTITY_ENDPOINT + IDENTITY_HEADER), a
// SHA-256 fingerprint of the access token (16 hex digits), and what it wrote and listed. Exit
// status 0 on success; on an error prints {"error": {...}} and exits 1.
import { createHash } from "node:crypto";
import { ManagedIdentityCredential } from "@azure/identity";
import { BlobServiceClient } from "@azure/storage-blob";

const STORAGE_SCOPE = "https://storage.azure.com/.default";

async function main() {
  const containerName = process.env.AGENT_CONTAINER ?? "hexr-stock-blob-node";
  const credential = new ManagedIdentityCredential();
  try {
    const service = new BlobServiceClient(process.env.HEXR_TEST_BLOB_ACCOUNT_URL, credential);
    const container = service.getContainerClient(containerName);
    await container.createIfNotExists();
    const key = `reports/blob-node-${process.pid}-${Date.now()}.json`;
    const body = '{"written_by": "@azure/storage-blob"}';
    await container.getBlockBlobClient(key).upload(body, Buffer.byteLength(body));
    const listed = [];
    for await (const blob of container.listBlobsFlat()) listed.push(blob.name);
    // The token the client used (served from the credential's cache: no second fetch).
    const { token } = await credential.getToken(STORAGE_SCOPE);
    console.log(JSON.stringify({
      sdk: "@azure/identity",
      managed_identity_source: credential.managedIdentityApp?.getManagedIdentitySource?.() ?? null,
      token_sha256: createHash("sha256").update(token).digest("hex").slice(0, 16),
      container: containerName,
      written: key,
      listed,
    }));
    return 0;
  } catch (error) {
    console.log(JSON.stringify({ error: { type: error?.name ?? "Error", message: String(error?.message ?? error).split("\n")[0] } }));
    return 1;
  }
}

process.exitCode = await main();
