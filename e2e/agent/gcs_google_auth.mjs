// A stock google-auth-library agent: no Hexr code, no key file. GoogleAuth finds no
// GOOGLE_APPLICATION_CREDENTIALS and no gcloud configuration, detects the metadata server
// (gcp-metadata) and so returns a Compute client, which gets its tokens from the sidecar's GCE
// metadata door found through the standard variables alone (GCE_METADATA_HOST, GCE_METADATA_IP).
// The token is then used against Cloud Storage's JSON API with the client's own request method,
// which adds the Authorization header.
//
// Inputs (environment): the two above; GOOGLE_CLOUD_PROJECT optional (else the metadata server's
// project-id); HEXR_TEST_GCS_ENDPOINT, the Cloud Storage API endpoint (fake-gcs-server in tests);
// AGENT_BUCKET (created if absent, default hexr-stock-gcs-node).
//
// Run with plain `node` (no build step). Prints one JSON object on stdout, never a token: the
// client class (Compute for the metadata door), a SHA-256 fingerprint of the access token (16 hex
// digits), and what it wrote and listed. Exit status 0 on success; on an error prints
// {"error": {...}} and exits 1.
import { createHash } from "node:crypto";
import { GoogleAuth } from "google-auth-library";

const SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"];

async function main() {
  const api = process.env.HEXR_TEST_GCS_ENDPOINT;
  const bucket = process.env.AGENT_BUCKET ?? "hexr-stock-gcs-node";
  try {
    const auth = new GoogleAuth({ scopes: SCOPES });
    const client = await auth.getClient();
    const project = await auth.getProjectId();

    const buckets = (await client.request({ url: `${api}/storage/v1/b`, params: { project } })).data.items ?? [];
    if (!buckets.some((b) => b.name === bucket)) {
      await client.request({ url: `${api}/storage/v1/b`, method: "POST", params: { project }, data: { name: bucket } });
    }
    const key = `reports/gcs-node-${process.pid}-${Date.now()}.json`;
    await client.request({
      url: `${api}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o`,
      method: "POST",
      params: { uploadType: "media", name: key },
      headers: { "content-type": "application/json" },
      body: '{"written_by": "google-auth-library"}',
    });
    const listed = ((await client.request({ url: `${api}/storage/v1/b/${encodeURIComponent(bucket)}/o` })).data.items ?? []).map((o) => o.name);
    // The token the requests above carried (cached by the client: no second fetch).
    const { token } = await client.getAccessToken();
    console.log(JSON.stringify({
      sdk: "google-auth-library",
      client_class: client.constructor.name,
      project,
      token_sha256: createHash("sha256").update(token).digest("hex").slice(0, 16),
      bucket,
      written: key,
      listed,
    }));
    return 0;
  } catch (error) {
    console.log(JSON.stringify({ error: { type: error?.name ?? "Error", message: String(error?.message ?? error) } }));
    return 1;
  }
}

process.exitCode = await main();
