// llm_* services: the provider's API key (OpenAI, Anthropic), read from Hexr Vault on the calling
// agent's behalf. Nothing is minted: the key is a secret the agent (or its operator, as the agent)
// put in the vault in the agent's own namespace, at agent level (`PUT /v1/secrets/OPENAI_API_KEY`,
// no scope), and the injector reads it for that agent and no other:
//
//   GET {vault}/v1/secrets/{key secret}       mTLS with the injector's own X.509-SVID
//   x-hexr-spiffe-id: {the verified identity}  x-hexr-identity-source: {as the filter said}
//   authorization: Bearer {the agent's JWT-SVID}   (the vault verifies it again: vault/auth.ts)
//
// The vault trusts the injector as a caller for every tenant (a caller rule, like the injector's
// trust to mint any identity's cloud credentials), but the scope it opens is the one the agent's
// own token names: a sidecar-asserted (static) identity carries no token and gets no key (403).
// Only an agent-level secret counts; a role-level one of the same name is not this identity's key.
// The answer is the contract's credentials for an llm_* service (contract.json llm.key_credentials):
// the key, and the models OPA granted (its scopes; "" when the whole service was granted).
import https from "node:https";
import type { PeerCertificate } from "node:tls";
import { HEADERS, LLM, LLM_MODEL, VAULT } from "../../contract/index.ts";
import { readTlsMaterial, watchTlsFiles, type TlsFiles, type TlsMaterial } from "../../spiffe/tls-files.ts";
import type { AgentProof } from "../auth/authenticate.ts";
import type { LlmConfig } from "../config.ts";
import { ExchangeError, denied, keyNotInVault, keyUnusable, notConfigured, vaultUnavailable } from "../errors.ts";
import type { Logger } from "../log.ts";
import { withDeadline, type CloudExchange, type ExchangeRequest, type IssuedCredentials } from "./provider.ts";

const SERVICE_NAME = "Hexr Vault";
/** The vault's agent-level scope (vault/scope.ts AGENT_SCOPE): the only one whose key counts. */
const AGENT_SCOPE = "*";
/** A value of vault.max_value_bytes, each byte JSON-escaped at worst, and the rest of the answer. */
const MAX_ANSWER_BYTES = 6 * VAULT.maxValueBytes + 4096;
/** What an API key can be: printable ASCII without spaces or JSON escapes, so it goes into a header as is. */
const API_KEY = /^[\x21\x23-\x5b\x5d-\x7e]{1,4096}$/;
/** Below SPIRE's rotation (at half an X.509-SVID's lifetime) by far, as for the injector's own listener. */
const TLS_RELOAD_INTERVAL_MS = 30_000;

export class VaultKeyExchange implements CloudExchange {
  readonly provider = LLM.keyProvider;
  readonly actsForAgent = true;
  private agent: https.Agent;
  private readonly stopWatching: () => void;

  constructor(
    private readonly config: LlmConfig,
    logger: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    const files: TlsFiles = { cert: config.cert_file, key: config.key_file, trustBundle: config.ca_file };
    this.agent = this.createAgent(readTlsMaterial(files));
    // A rotated SVID (SPIRE, hexr-svid-files) is used from the next request on; the previous
    // agent's connections are closed once any read still on them is past its deadline.
    this.stopWatching = watchTlsFiles(files, (material) => {
      const previous = this.agent;
      this.agent = this.createAgent(material);
      setTimeout(() => previous.destroy(), config.timeout_ms).unref();
    }, logger, TLS_RELOAD_INTERVAL_MS);
  }

  close(): void {
    this.stopWatching();
    this.agent.destroy();
  }

  async exchange(request: ExchangeRequest, proof?: AgentProof): Promise<IssuedCredentials> {
    const secret = this.config.key_secrets[request.service];
    if (!secret) throw notConfigured(`no vault secret is configured for ${request.service} (llm.key_secrets)`);
    if (!proof) throw new Error("the vault key exchange needs the agent's proof");
    const models = grantedModels(request);
    const value = await withDeadline(SERVICE_NAME, this.config.timeout_ms, (signal) => this.read(secret, request, proof, signal), classify);
    if (!API_KEY.test(value)) throw keyUnusable(secret);
    return {
      credentials: { [LLM.keyCredentials.apiKey]: value, [LLM.keyCredentials.models]: models },
      expiresAt: new Date(this.clock() + this.config.key_ttl_seconds * 1000),
    };
  }

  /** GET the secret as the agent; its value, or the contract's error for what the vault said. */
  private read(secret: string, request: ExchangeRequest, proof: AgentProof, signal: AbortSignal): Promise<string> {
    // Relative to the configured URL, so a path in front of the vault (a proxy) is kept.
    const url = new URL(`${VAULT.secretsPath.slice(1)}/${encodeURIComponent(secret)}`, this.config.vault_url + "/");
    const headers: Record<string, string> = {
      accept: "application/json",
      [HEADERS.spiffe_id]: request.identity.spiffeId,
      [HEADERS.identity_source]: proof.source,
    };
    if (proof.jwtSvid !== null) headers.authorization = `Bearer ${proof.jwtSvid}`;
    return new Promise<string>((resolve, reject) => {
      const call = https.request(url, { method: "GET", agent: this.agent, signal, headers });
      call.once("error", reject);
      call.once("response", (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) call.destroy(vaultUnavailable("its answer is too large"));
          else chunks.push(chunk);
        });
        response.once("error", reject);
        response.once("end", () => {
          try {
            resolve(secretValue(secret, response.statusCode ?? 0, Buffer.concat(chunks).toString("utf8")));
          } catch (error) {
            reject(error);
          }
        });
      });
      call.end();
    });
  }

  private createAgent(material: TlsMaterial): https.Agent {
    const expected = this.config.vault_spiffe_id;
    return new https.Agent({
      keepAlive: true,
      cert: material.cert,
      key: material.key,
      ca: material.ca,
      minVersion: "TLSv1.2",
      // The vault is known by its SPIFFE ID, not by a host name (an X.509-SVID may carry none).
      checkServerIdentity: (_host: string, certificate: PeerCertificate) => {
        const uris = (certificate.subjectaltname ?? "").split(", ").filter((name) => name.startsWith("URI:")).map((name) => name.slice(4));
        return uris.length === 1 && uris[0] === expected ? undefined : new Error(`the vault's certificate is not ${expected}`);
      },
    });
  }
}

/**
 * The models OPA granted, as the LLM route reads them: its scopes are the models
 * ("llm_openai:gpt-4o" → "gpt-4o"), space-separated; "" when the whole service was granted (every
 * model the sidecar allows). A scope that is no model name is left out (narrower, never wider);
 * none left → 403. (The generic enforceableScopes knows only "read", which means nothing here.)
 */
function grantedModels(request: ExchangeRequest): string {
  if (request.scopes.length === 0) return "";
  const models = request.scopes.filter((scope) => LLM_MODEL.test(scope));
  if (models.length === 0) throw denied(`the granted scopes of ${request.service} name no model`);
  return models.join(" ");
}

/**
 * The vault's answer → the key, or the contract's error: 404 (no such secret in the agent's
 * namespace) and a role-level secret → 403 naming the secret; 403 → 403; 401, 5xx and anything
 * else → 503. The vault's body is read for the value only, never quoted.
 */
function secretValue(secret: string, status: number, text: string): string {
  if (status === 404) throw keyNotInVault(secret);
  if (status === 403) throw denied(`Hexr Vault refused to read ${secret} for this identity`);
  if (status !== 200) throw vaultUnavailable(`it answered HTTP ${status}`);
  let answer: { scope?: unknown; value?: unknown };
  try {
    answer = JSON.parse(text);
  } catch {
    throw vaultUnavailable("its answer is not JSON");
  }
  // A role-level secret of that name belongs to one role of the agent, not to the identity's agent scope.
  if (answer?.scope !== AGENT_SCOPE) throw keyNotInVault(secret);
  if (typeof answer.value !== "string") throw vaultUnavailable("its answer has no value");
  return answer.value;
}

/** No answer at all (refused, reset, TLS failure): the vault is unreachable. */
function classify(error: unknown): ExchangeError {
  return error instanceof ExchangeError ? error : vaultUnavailable("it is unreachable");
}
