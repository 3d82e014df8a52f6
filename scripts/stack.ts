// `npm start`: the whole local stack on its documented loopback ports (stack/defaults.ts), until
// Ctrl-C. Logs go to .run/stack/logs/, one file per part.
import { rmSync } from "node:fs";
import path from "node:path";
import { canConnect } from "../support/processes.ts";
import { projectRoot } from "../support/tools.ts";
import { issueX509Svid } from "../support/dev-identity.ts";
import { DEFAULT_PORTS, DEMO_AGENT_ID, METADATA_AGENT_ID, startStack, type Stack, type StackPorts } from "../stack/index.ts";
import { stockSdkEnvironment } from "../stack/sdk-env.ts";

const runDir = path.join(projectRoot, ".run", "stack");
const relative = (file: string) => path.relative(process.cwd(), file) || ".";

async function portsInUse(ports: StackPorts): Promise<string[]> {
  const checks = await Promise.all(Object.entries(ports).map(async ([name, port]) => ((await canConnect(port)) ? `${name} (${port})` : "")));
  return checks.filter(Boolean);
}

function banner(stack: Stack, svid: { cert: string; key: string }): string {
  const { ports, envoy } = stack;
  const body = `'{"service":"aws_s3","region":"us-west-2"}'`;
  const sdkEnv = Object.entries(stockSdkEnvironment(envoy, { tokenFile: "$TOKEN_FILE" }))
    .map(([name, value]) => `  export ${name}=${value}`)
    .join("\n");
  return `
Hexr local stack is up, everything on 127.0.0.1:
  agent listener  ${envoy.agentUrl}/exchange     agents send their JWT-SVID (Authorization: Bearer)
                  ${envoy.agentMtlsUrl}/exchange    agents present their X.509-SVID (mTLS)
  Envoy stats     ${envoy.statsUrl}   Prometheus format (the filter's: envoy_wasmcustom_*); nothing else on it
  Envoy admin     ${relative(envoy.adminSocket)}   a Unix socket, no TCP port:
                  curl -s --unix-socket ${relative(envoy.adminSocket)} 'http://admin/stats?filter=wasmcustom'
  injector ${ports.injector} (mTLS)   bridge ${ports.bridge} (mTLS)   OPA ${ports.opa}   moto (STS, S3) ${ports.moto}   Valkey ${ports.valkey}
  Valkey requires AUTH: redis-cli -p ${ports.valkey} --user ${stack.l2.valkeyAdmin.username} --askpass  (password in ${relative(path.join(stack.runDir, "valkey-users"))}/)
  logs            ${relative(path.join(stack.runDir, "logs"))}/  (envoy-pod-a.log, injector.log, ...; Envoy's access log: ${relative(envoy.accessLogPath)})

Get a JWT-SVID for a dev agent and exchange it (first from L3, then from L1: see x-hexr-cache):
  TOKEN=$(npm run -s token -- ${DEMO_AGENT_ID})
  curl -si ${envoy.agentUrl}/exchange -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d ${body}

The same agent with its X.509-SVID (the JWT-SVID still travels: the injector presents it to STS):
  curl -si --cacert ${relative(stack.identity.ca)} --cert ${relative(svid.cert)} --key ${relative(svid.key)} \\
       ${envoy.agentMtlsUrl}/exchange -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d ${body}

Stock SDKs with no Hexr code (README, "Stock SDKs"): boto3, the AWS SDK for JavaScript, google-auth and
azure-identity find the sidecar through these variables. AWS uses the process's own JWT-SVID; the GCE and
Azure doors on ${envoy.metadataListeners[0]?.gceMetadataHost} serve ${METADATA_AGENT_ID}.
  TOKEN_FILE=$(mktemp) && npm run -s token -- ${METADATA_AGENT_ID} > $TOKEN_FILE
${sdkEnv}
  AWS_ENDPOINT_URL_S3=http://127.0.0.1:${ports.moto} AWS_REGION=us-east-1 .venv/bin/python -c 'import boto3; print(boto3.client("s3").list_buckets()["Buckets"])'

Ctrl-C stops everything.
`;
}

async function main(): Promise<void> {
  const busy = await portsInUse(DEFAULT_PORTS);
  if (busy.length > 0) {
    console.error(`cannot start: something already listens on ${busy.join(", ")} (another \`npm start\`?)`);
    process.exit(1);
  }
  rmSync(runDir, { recursive: true, force: true });
  console.log("starting Valkey, the bridge, OPA, moto, the injector and Envoy ...");
  const started = Date.now();
  const stack = await startStack({ ports: DEFAULT_PORTS, runDir, logFiles: true });
  const svid = await issueX509Svid(DEMO_AGENT_ID);
  console.log(banner(stack, svid));
  console.log(`(up in ${((Date.now() - started) / 1000).toFixed(1)} s)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping ...`);
    await stack.stop();
    console.log(`stopped; logs kept in ${relative(path.join(runDir, "logs"))}/`);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error: Error) => {
  console.error(`the stack did not start: ${error.message}`);
  process.exit(1);
});
