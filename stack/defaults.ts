// The local stack's fixed ports (`npm start`, docker-compose.yml) and the dev identities the
// README and the tests use. Tests pass 0 for every port and get free ones instead.

export interface StackPorts {
  /** Envoy agent listener, plain HTTP (agents call it unchanged, with a JWT-SVID). */
  agent: number;
  /** Envoy agent listener for agents presenting an X.509-SVID (mTLS). */
  agentMtls: number;
  /**
   * Envoy's metadata listener for the pod's metadata identity (METADATA_AGENT_ID): the GCE metadata
   * server and the Azure managed-identity endpoint of stock SDKs. Always on 127.0.0.1.
   */
  metadata: number;
  /**
   * Envoy's stats listener: GET /stats/prometheus and nothing else. (Envoy's admin itself is a
   * Unix socket in the sidecar's run directory, never a TCP port.)
   */
  stats: number;
  /** Credential Injector, HTTPS with a required client certificate (the sidecar's SVID). */
  injector: number;
  /** Valkey HTTP bridge (L2). */
  bridge: number;
  /** Hexr Vault, HTTPS with a required client certificate (the sidecar's SVID). */
  vault: number;
  opa: number;
  /** moto: AWS STS and S3. */
  moto: number;
  valkey: number;
}

export const DEFAULT_PORTS: Readonly<StackPorts> = {
  agent: 15080,
  agentMtls: 15081,
  metadata: 15082,
  stats: 15020,
  injector: 15443,
  bridge: 15090,
  vault: 15460,
  opa: 15181,
  moto: 15500,
  valkey: 16379,
};

/** Every port 0: each part gets a free loopback port (tests, several stacks side by side). */
export const FREE_PORTS: Readonly<StackPorts> = {
  agent: 0,
  agentMtls: 0,
  metadata: 0,
  stats: 0,
  injector: 0,
  bridge: 0,
  vault: 0,
  opa: 0,
  moto: 0,
  valkey: 0,
};

/** An agent the dev OPA policy (policy/data.json) grants aws_s3 in full. */
export const DEMO_AGENT_ID = "spiffe://hexr.local/agent/acme-corp/research-analyst/main";

/**
 * The identity the stack's metadata listener serves to stock GCP and Azure SDKs (policy/data.json
 * grants it aws_s3, gcp_storage and azure_storage).
 */
export const METADATA_AGENT_ID = "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main";

/** The identity that may read and verify the vault's audit log in the stack (vault `admins`). */
export const VAULT_ADMIN_ID = "spiffe://hexr.local/agent/hexr-system/vault-auditor/main";

/** `npm start`'s loopback LLM provider emulator (support/llm-provider.ts): no real provider is reachable from here. */
export const LLM_EMULATOR_PORT = 15470;

/** The keys the emulator accepts in the local stack: the ones the samples store in the vault, as the guides write them. */
export const LLM_EMULATOR_KEYS: Readonly<{ openai: string[]; anthropic: string[] }> = { openai: ["sk-proj-..."], anthropic: ["sk-ant-..."] };

/** The LLM route's upstreams in the local stack: every provider it serves goes to the emulator at `baseUrl`. */
export function llmEmulatorProviders(baseUrl: string): { openai: string; anthropic: string; azure_openai: string } {
  return { openai: baseUrl, anthropic: baseUrl, azure_openai: baseUrl };
}

/** The identity that may read every identity's LLM usage from the sidecars (filter `llm.admin_spiffe_ids`). */
export const LLM_ADMIN_ID = "spiffe://hexr.local/agent/hexr-system/cost-auditor/main";
