// The content crew: one agent ("content-crew", tenant acme-corp) run as three processes, one per
// role, each with its own SPIFFE identity (its own JWT-SVID file), as the per-process identity
// guide describes. Run one role per process:
//
//   HEXR_PROCESS_ROLE=writer HEXR_JWT_SVID_FILE=/run/hexr/writer.jwt npx tsx examples/typescript/content-crew/crew.ts
//
// Each role prints one JSON line: who it is and what each tool gave it (never a credential).
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { HexrError, hexrAgent, hexrClient, hexrTool } from "../../../sdk/typescript/src/index.ts";

type Outcome = "ok" | `denied ${number} (${"local" | "sidecar"})` | `error ${string}`;

/** What each role declares it needs (the sidecar's policy grants the same). */
const RESOURCES: Record<string, string[]> = {
  researcher: ["gcp_bigquery:read"],
  writer: ["aws_s3"],
  editor: [],
};

function outcome(error: unknown, where: "local" | "sidecar"): Outcome {
  if (error instanceof HexrError && error.status === 403) return `denied ${error.status} (${where})`;
  return `error ${error instanceof HexrError ? error.toString() : "unexpected"}`;
}

/** A tool as the role's code would use it, locally checked against its resources. */
async function tryTool(use: () => Promise<void>): Promise<Outcome> {
  try {
    await use();
    return "ok";
  } catch (error) {
    return outcome(error, "local");
  }
}

/** Asks the sidecar directly (no local resources check): what policy says for this identity. */
async function askSidecar(service: string): Promise<Outcome> {
  try {
    await hexrClient().resolve(service);
    return "ok";
  } catch (error) {
    return outcome(error, "sidecar");
  }
}

const role = process.env.HEXR_PROCESS_ROLE ?? "main";

const run = hexrAgent({ name: "content-crew", tenant: "acme-corp", role, framework: "custom", resources: RESOURCES[role] ?? [] }, async () => {
  const tools: Record<string, Outcome> = {};
  const sidecar: Record<string, Outcome> = {};
  const bucket = process.env.CREW_BUCKET ?? "content-crew-drafts";

  tools.gcp_bigquery = await tryTool(async () => {
    const bq = await hexrTool("gcp_bigquery", { projectId: "content-crew" });
    await bq.authClient.getClient(); // research would run bq.query(...) here
  });
  tools.aws_s3 = await tryTool(async () => {
    const s3 = await hexrTool("aws_s3", { forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e: { name?: string }) => {
      if (e.name !== "BucketAlreadyOwnedByYou" && e.name !== "BucketAlreadyExists") throw e;
    });
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `draft-by-${role}.md`, Body: `# Draft\nwritten by the ${role}\n` }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    if (!listed.Contents?.some((o) => o.Key === `draft-by-${role}.md`)) throw new Error("the draft is not listed");
    s3.destroy();
  });
  for (const service of ["aws_s3", "gcp_bigquery"]) sidecar[service] = await askSidecar(service);
  return { role, spiffe_id: await hexrClient().spiffeId(), tools, sidecar };
});

run().then(
  (report) => {
    console.log(JSON.stringify(report));
    hexrClient().close();
  },
  (error) => {
    console.log(JSON.stringify({ role, error: error instanceof HexrError ? error.toJSON() : "unexpected error" }));
    process.exitCode = 1;
    hexrClient().close();
  },
);
