// `npm start`: the whole local stack on its documented loopback ports (stack/defaults.ts), until
// Ctrl-C, with its identities from real SPIRE: the content crew (examples/python/content_crew) is
// discovered by `hexr build` and its roles registered before anything serves. Logs go to
// .run/stack/logs/, one file per part. `npm start -- --dev-identity`: the dev identity instead
// (support/dev-identity.ts: tokens from `npm run token`, no SPIRE). The LLM route goes to the
// loopback provider emulator (support/llm-provider.ts), which accepts the keys the samples store.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { canConnect } from "../support/processes.ts";
import { spireTools } from "../stack/spire.ts";
import { projectRoot } from "../support/tools.ts";
import { issueX509Svid } from "../support/dev-identity.ts";
import { startLlmProvider, type LlmProvider } from "../support/llm-provider.ts";
import {
  DEFAULT_PORTS, DEMO_AGENT_ID, LLM_ADMIN_ID, LLM_EMULATOR_KEYS, LLM_EMULATOR_PORT, METADATA_AGENT_ID, llmEmulatorProviders, startStack, type Stack, type StackPorts,
} from "../stack/index.ts";
import { stockSdkEnvironment } from "../stack/sdk-env.ts";

const runDir = path.join(projectRoot, ".run", "stack");
const relative = (file: string) => path.relative(process.cwd(), file) || ".";
const hexr = path.join(projectRoot, ".venv", "bin", "hexr");
/** The demo agents registered in SPIRE, each with its own range of uids for its roles. */
const DEMO_AGENTS = [
  { name: "content-crew", source: "examples/python/content_crew/crew.py", uidBase: 61000, tenant: "acme-corp" },
  { name: "my-agent", source: "examples/python/vault/my_agent.py", uidBase: 61100, tenant: "acme-corp" },
  { name: "smart-agent", source: "examples/python/vault/smart_agent.py", uidBase: 61200, tenant: "acme-corp" },
  { name: "cost-auditor", source: "examples/python/llm/cost_report.py", uidBase: 61300, tenant: "hexr-system" },
];

async function portsInUse(ports: StackPorts & { llmEmulator: number }): Promise<string[]> {
  const checks = await Promise.all(Object.entries(ports).map(async ([name, port]) => ((await canConnect(port)) ? `${name} (${port})` : "")));
  return checks.filter(Boolean);
}

function spireBanner(stack: Stack, [crew, myAgent, smartAgent, costAuditor]: string[]): string {
  const { ports, envoy } = stack;
  const spire = stack.spire!.spire;
  const run = (role: string, contexts = crew) => `${relative(hexr)} run --role ${role} --contexts ${relative(contexts)} --`;
  const podEnv = [
    `  export SPIFFE_ENDPOINT_SOCKET=unix://${spire.agentSocket}`,
    `  export HEXR_SIDECAR_URL=${envoy.agentUrl} HEXR_CONTEXT_DIR=/tmp CREW_S3_ENDPOINT=http://127.0.0.1:${ports.moto} GOOGLE_CLOUD_PROJECT=hexr-dev`,
  ].join("\n");
  return `
Hexr local stack is up, everything on 127.0.0.1, every identity from SPIRE:
  SPIRE           server API ${relative(spire.serverSocket)} (its user only)   Workload API ${relative(spire.agentSocket)}
                  JWT-SVID keys ${spire.jwksUrl}
  agent listener  ${envoy.agentUrl}/exchange     agents send their JWT-SVID (Authorization: Bearer)
                  ${envoy.agentMtlsUrl}/exchange    agents present their X.509-SVID (mTLS)
  Envoy stats     ${envoy.statsUrl}   Envoy admin ${relative(envoy.adminSocket)} (a Unix socket)
  injector ${ports.injector} (mTLS)   bridge ${ports.bridge} (mTLS)   vault ${ports.vault} (mTLS)   OPA ${ports.opa}   moto (STS, S3) ${ports.moto}   Valkey ${ports.valkey}
  logs            ${relative(path.join(stack.runDir, "logs"))}/

The content crew is registered: each role has its own uid, SPIRE entry and SPIFFE ID
(${relative(crew)}/). As root, start a role; it fetches its own SVIDs and only gets its grants:
${podEnv}
  ${run("writer")} .venv/bin/python examples/python/content_crew/crew.py
  ${run("researcher")} .venv/bin/python examples/python/content_crew/crew.py

The vault guide's samples, as my-agent and smart-agent (registered too):
  ${run("main", myAgent)} .venv/bin/python examples/python/vault/my_agent.py
  ${run("main", myAgent)} .venv/bin/python examples/python/vault/my_agent_secrets_batch.py
  ${run("main", smartAgent)} .venv/bin/python examples/python/vault/smart_agent.py

${llmSection(stack)}
The crew's LLM calls (each role's tokens under its own SPIFFE ID), then the per-role cost tree:
  ${run("researcher")} .venv/bin/python -c 'from hexr.vault import VaultClient; VaultClient().put("OPENAI_API_KEY", "sk-proj-...")'
  for role in researcher writer editor; do ${run("$role")} .venv/bin/python examples/python/llm/crew_llm.py; done
  ${run("main", costAuditor)} .venv/bin/python examples/python/llm/cost_report.py

A role's JWT-SVID, fetched as that role (nobody else can), and an exchange with it:
  TOKEN=$(${run("writer")} ${relative(spireTools.agent)} api fetch jwt -audience hexr-credential-injector -socketPath ${relative(spire.agentSocket)} | sed -n 2p | tr -d '\\t ')
  curl -si ${envoy.agentUrl}/exchange -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d '{"service":"aws_s3"}'

Stock SDKs (README, "Stock SDKs"): \`hexr run --jwt-svid-file FILE\` keeps the role's token file fresh for
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE; the GCE and Azure doors on ${envoy.metadataListeners[0]?.gceMetadataHost} serve ${METADATA_AGENT_ID}.
Registration follows the contexts: edit the source, \`hexr build\` again, then
  ${relative(spireTools.registrar)} -server-socket ${relative(spire.serverSocket)} -parent-id ${stack.spire!.spire.nodeId} -contexts ${relative(crew)} ...

Ctrl-C stops everything.
`;
}

function llmSection(stack: Stack): string {
  return `The LLM route: ${stack.envoy.agentUrl}/v1/llm/{openai,anthropic,azure_openai}/... with the caller's SVID and no key, to the
loopback provider emulator on 127.0.0.1:${LLM_EMULATOR_PORT} (no real provider is reachable from here; it accepts the keys the
samples store: ${Object.values(LLM_EMULATOR_KEYS).flat().join(", ")}). Usage: ${stack.envoy.agentUrl}/v1/llm/usage, Prometheus hexr_llm_* on the stats listener.`;
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
  Envoy stats     ${envoy.statsUrl}   Prometheus format (the filters': hexr_*); nothing else on it
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

${llmSection(stack)}
The vault guide's hexr_llm sample, the crew's LLM calls, then the per-role cost tree:
  npm run -s token -- spiffe://hexr.local/agent/acme-corp/smart-agent/main > /tmp/smart-agent.jwt
  HEXR_JWT_SVID_FILE=/tmp/smart-agent.jwt .venv/bin/python examples/python/vault/smart_agent.py
  for role in researcher writer editor; do
    npm run -s token -- spiffe://hexr.local/agent/acme-corp/content-crew/$role > /tmp/$role.jwt
    HEXR_PROCESS_ROLE=$role HEXR_JWT_SVID_FILE=/tmp/$role.jwt .venv/bin/python -c 'from hexr.vault import VaultClient; VaultClient().put("OPENAI_API_KEY", "sk-proj-...")'
    HEXR_PROCESS_ROLE=$role HEXR_JWT_SVID_FILE=/tmp/$role.jwt .venv/bin/python examples/python/llm/crew_llm.py
  done
  npm run -s token -- ${LLM_ADMIN_ID} > /tmp/cost-auditor.jwt
  HEXR_JWT_SVID_FILE=/tmp/cost-auditor.jwt .venv/bin/python examples/python/llm/cost_report.py

Ctrl-C stops everything.
`;
}

async function main(): Promise<void> {
  const busy = await portsInUse({ ...DEFAULT_PORTS, llmEmulator: LLM_EMULATOR_PORT });
  if (busy.length > 0) {
    console.error(`cannot start: something already listens on ${busy.join(", ")} (another \`npm start\`?)`);
    process.exit(1);
  }
  rmSync(runDir, { recursive: true, force: true });
  const devIdentity = process.argv.includes("--dev-identity");
  const started = Date.now();
  let stack: Stack;
  const provider: LlmProvider = await startLlmProvider({ keys: LLM_EMULATOR_KEYS, port: LLM_EMULATOR_PORT });
  const llm = { providers: llmEmulatorProviders(provider.url) };
  if (devIdentity) {
    console.log("starting Valkey, the bridge, OPA, moto, the injector and Envoy (dev identity) ...");
    stack = await startStack({ ports: DEFAULT_PORTS, runDir, logFiles: true, llm });
    console.log(banner(stack, await issueX509Svid(DEMO_AGENT_ID)));
  } else {
    // Role processes run under uids of their own: the build output must be readable by them.
    const contexts = DEMO_AGENTS.map(({ name, source, uidBase, tenant }) => {
      const out = path.join(runDir, "hexr", name);
      mkdirSync(out, { recursive: true, mode: 0o755 });
      const args = ["build", path.join(projectRoot, source), "--tenant", tenant, "--trust-domain", "hexr.local", "--out", out, "--uid-base", String(uidBase)];
      console.log(execFileSync(hexr, args, { encoding: "utf8" }));
      return path.join(out, "process-contexts");
    });
    console.log("starting SPIRE, Valkey, the bridge, the vault, OPA, moto, the injector and Envoy ...");
    stack = await startStack({ ports: DEFAULT_PORTS, runDir, logFiles: true, identity: "spire", spire: { contexts }, llm });
    console.log(spireBanner(stack, contexts));
  }
  console.log(`(up in ${((Date.now() - started) / 1000).toFixed(1)} s)`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping ...`);
    await stack.stop();
    await provider.stop();
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
