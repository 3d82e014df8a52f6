// Run as its own process by stack.test.ts: an agent configured only by the environment
// (HEXR_SIDECAR_URL, HEXR_JWT_SVID_FILE, AZURE_STORAGE_ACCOUNT_URL, and NODE_EXTRA_CA_CERTS so Node
// trusts Azurite's dev CA), writing and listing a blob with hexrTool("azure_storage").
// Prints one JSON line, never a credential.
import { hexrAgent, hexrTool } from "../../src/index.ts";

const main = hexrAgent({ name: "multi-cloud-analyst", tenant: "acme-corp", resources: ["aws_s3", "gcp_bigquery", "gcp_storage", "azure_storage"] }, async () => {
  const blobs = await hexrTool("azure_storage");
  const container = blobs.getContainerClient(process.env.AGENT_CONTAINER!);
  await container.create();
  await container.getBlockBlobClient("report.json").upload("{}", 2);
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat()) names.push(blob.name);
  return { listed: names };
});

main().then(
  (report) => console.log(JSON.stringify(report)),
  (error) => {
    console.log(JSON.stringify({ error: String(error) }));
    process.exitCode = 1;
  },
);
