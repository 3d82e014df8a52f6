// Attacks on the policy side of the stack, from where the threat model puts the attacker: a process
// in an agent's container that reaches every loopback port (OPA's included), holds its own SVID
// and may have read another process's environment.
//
//   - OPA's management API answers only the injector's token: without it, or with a wrong one,
//     granting itself access (PUT /v1/data), replacing the policy (PUT /v1/policies), reading the
//     grants (GET /v1/data) and ad-hoc queries are refused, and a following exchange is still
//     denied; the injector's own decisions keep working. The token is in no command line,
//     environment or log.
//   - A revoked identity stays revoked: after an admin revokes X through the sidecar's /revoke, a
//     fresh request from X (L1 and L2 emptied by the revocation) gets the injector's 403, not a new
//     credential, also after the injector restarts; another identity is unaffected.
//   - docker-compose runs OPA and the injector the same way (checked as data).
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../injector/config.ts";
import { BRIDGE_SPIFFE_ID, defaultDevIdentityDir, mintJwtSvid } from "../support/dev-identity.ts";
import { CONTRACT_DATA_PATH, opaServerArgs } from "../support/opa.ts";
import { projectRoot } from "../support/tools.ts";
import { OPA_FILES, OPA_IN_CONTAINER, RENDERED_DIR, SERVICES } from "../stack/compose.ts";
import { composeInjectorConfig } from "../stack/compose-injector.ts";
import { DEFAULT_PORTS, startStack, type Stack } from "../stack/index.ts";
import { stackOpaAuth } from "../stack/services.ts";
import {
  SecretLedger, eventually, exchange, expectContractError, expectCredential, expectNoSecretsInLogs, injectorExchangeLines, request, sleep, summary,
} from "./helpers.ts";

const REVOKE_PATH = "/revoke";
const POLL_INTERVAL_MS = 1_000;
const ADMIN = "spiffe://hexr.local/agent/acme-corp/platform-admin/ops";
/** An agent no grant names: only OPA stands between it and aws_s3 (the sidecar has no allow-list entry for it). */
const INTRUDER = "spiffe://hexr.local/agent/acme-corp/intruder/main";
/** Granted aws_s3 by the shipped policy (acme-corp/multi-cloud-agent, any role). */
const X = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/revoked-x";
const X_SIBLING = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/revoked-x2";
const Y = "spiffe://hexr.local/agent/acme-corp/multi-cloud-agent/bystander-y";

let stack: Stack;
const ledger = new SecretLedger();
const tokens = new Map<string, string>();
let opaToken: string;

beforeAll(async () => {
  stack = await startStack({
    filterOverrides: { revocation: { path: REVOKE_PATH, admin_spiffe_ids: [ADMIN], poll_interval_ms: POLL_INTERVAL_MS } },
    injectorRevocation: { poll_interval_ms: POLL_INTERVAL_MS },
  });
  for (const id of [ADMIN, INTRUDER, X, X_SIBLING, Y]) tokens.set(id, ledger.token(await mintJwtSvid(id)));
  opaToken = readFileSync(stackOpaAuth(stack.runDir).tokenFile, "utf8").trim();
  ledger.token(`x.y.${opaToken}`); // the ledger's rule for tokens: the OPA token must appear in no log either
});

afterAll(async () => {
  await stack?.stop();
});

const opaUrl = (pathAndQuery: string) => `${stack.parts.opa.url}${pathAndQuery}`;
const ask = (id: string, region?: string) => exchange(stack.envoy, { token: tokens.get(id), region });

/** A grant for the intruder, as an attacker would write it into OPA's data. */
const GRANT = JSON.stringify({ roles: { "*": ["aws_s3", "aws_dynamodb"] } });
/** A policy that allows everything, as an attacker would upload it. */
const ALLOW_ALL = 'package hexr.exchange\n\ndecision := {"allow": true, "scopes": [], "reasons": []}\n';

describe("OPA's API from the agent's loopback", () => {
  it("denies the intruder before any attack (the policy grants it nothing)", async () => {
    const answer = await ask(INTRUDER);
    expectContractError(answer, 403, "CredentialError");
    expect(answer.json.error.message).toBe("policy denied: aws_s3 is not granted to acme-corp/intruder/main");
  });

  for (const [who, headers] of [
    ["without a token", [] as [string, string][]],
    ["with a guessed token", [["authorization", "Bearer " + "A".repeat(43)]] as [string, string][]],
    ["with the agent's own JWT-SVID as the token", [] as [string, string][]],
  ] as const) {
    it(`refuses every write, read and query ${who}; the next exchange is still denied`, async () => {
      const auth: [string, string][] = who.includes("JWT-SVID") ? [["authorization", `Bearer ${tokens.get(INTRUDER)}`]] : [...headers];
      const attempts: { method: string; path: string; body?: string; type?: string }[] = [
        { method: "PUT", path: "/v1/data/hexr/tenants/acme-corp/agents/intruder", body: GRANT },
        { method: "PATCH", path: "/v1/data/hexr/tenants", body: JSON.stringify([{ op: "add", path: "/acme-corp/agents/intruder", value: JSON.parse(GRANT) }]), type: "application/json-patch+json" },
        { method: "PUT", path: "/v1/data/hexr/unrestricted_regions", body: '["aws","gcp","azure"]' },
        { method: "DELETE", path: "/v1/data/hexr/tenants" },
        { method: "PUT", path: "/v1/policies/grant-all", body: ALLOW_ALL, type: "text/plain" },
        { method: "DELETE", path: "/v1/policies/policy/system/authz.rego" },
        { method: "GET", path: "/v1/data" },
        { method: "GET", path: "/v1/data/hexr/tenants" },
        { method: "GET", path: "/v1/policies" },
        { method: "POST", path: "/v1/query", body: JSON.stringify({ query: "data.hexr_authz" }) },
        { method: "POST", path: "/", body: JSON.stringify({ input: {} }) },
        // The decision endpoint itself: an agent may not even ask (and learn the policy by probing).
        { method: "POST", path: "/v1/data/hexr/exchange/decision", body: JSON.stringify({ input: {} }) },
        { method: "GET", path: "/v1/config" },
        { method: "GET", path: "/health" },
      ];
      for (const attempt of attempts) {
        const answer = await request(opaUrl(attempt.path), {
          method: attempt.method,
          headers: [...auth, ...(attempt.body !== undefined ? [["content-type", attempt.type ?? "application/json"] as [string, string]] : [])],
          body: attempt.body,
        });
        expect(answer.status, `${attempt.method} ${attempt.path}: ${answer.text.slice(0, 200)}`).toBe(401);
        // Refused without saying anything about the data or the policy.
        expect(answer.text).not.toMatch(/acme-corp|token_sha256|tenants/);
      }
      const after = await ask(INTRUDER);
      expectContractError(after, 403, "CredentialError");
      expect(after.json.error.message).toBe("policy denied: aws_s3 is not granted to acme-corp/intruder/main");
    });
  }

  it("refuses even the injector's own token everything but decisions and the health check", async () => {
    const injector: [string, string][] = [["authorization", `Bearer ${opaToken}`]];
    expect((await request(opaUrl("/health"), { headers: injector })).status).toBe(200);
    for (const attempt of [
      { method: "PUT", path: "/v1/data/hexr/tenants/acme-corp/agents/intruder", body: GRANT },
      { method: "PUT", path: "/v1/policies/grant-all", body: ALLOW_ALL },
      { method: "GET", path: "/v1/data" },
      { method: "POST", path: "/v1/data/hexr_authz" },
      { method: "POST", path: "/v1/data/hexr/exchange/decision?explain=full", body: JSON.stringify({ input: {} }) },
    ]) {
      const answer = await request(opaUrl(attempt.path), { method: attempt.method, headers: injector, body: attempt.body });
      expect(answer.status, `${attempt.method} ${attempt.path}`).toBe(401);
    }
    expectContractError(await ask(INTRUDER), 403, "CredentialError");
  });

  it("keeps answering the injector's own decisions", async () => {
    ledger.credentials(expectCredential(await ask(Y), "L3", Y));
  });

  it("keeps the token out of command lines and environments, in a file only its owner reads", async () => {
    const { tokenFile, authzDataFile } = stackOpaAuth(stack.runDir);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(statSync(authzDataFile).mode & 0o077).toBe(0);
    // OPA has only its hash; a leaked hash of 32 random bytes is no token.
    expect(readFileSync(authzDataFile, "utf8")).not.toContain(opaToken);
    for (const part of [stack.parts.opa, stack.parts.injector]) {
      for (const file of ["cmdline", "environ"]) {
        const text = readFileSync(`/proc/${part.pid}/${file}`).toString("utf8");
        expect(text.includes(opaToken), `${part.name}'s ${file}`).toBe(false);
      }
    }
    expect(readFileSync(`/proc/${stack.parts.opa.pid}/cmdline`, "utf8").split("\0")).toEqual(
      expect.arrayContaining(["--authentication=token", "--authorization=basic", authzDataFile]),
    );
  });
});

describe("revocation reaches the injector", () => {
  it("refuses a revoked identity's fresh request (403, not a new credential); another identity is unaffected", async () => {
    ledger.credentials(expectCredential(await ask(X), "L3", X));
    expectCredential(await ask(X), "L1", X);
    ledger.credentials(expectCredential(await ask(X_SIBLING), "L3", X_SIBLING));
    ledger.credentials(expectCredential(await ask(Y, "eu-west-1"), "L3", Y));

    const revokedAt = Date.now();
    const revoked = await request(`${stack.envoy.agentUrl}${REVOKE_PATH}`, {
      method: "POST",
      headers: [["content-type", "application/json"], ["authorization", `Bearer ${tokens.get(ADMIN)}`]],
      body: JSON.stringify({ spiffe_id: X }),
    });
    expect(revoked.status, summary(revoked)).toBe(200);
    expect(revoked.json.revoked).toBe(`cred:${X}:`);

    // The injector reads the log every poll interval: it knows within about one.
    await eventually(
      "the injector learned the revocation",
      async () => stack.parts.injector.logs().includes(`"prefix":"cred:${X}:"`),
      POLL_INTERVAL_MS * 3,
    );
    console.info(`revocation learned by the injector after ${Date.now() - revokedAt} ms`);
    // The sidecar that took the revocation refuses X itself, before any tier (as every sidecar does
    // once its poll brings the revocation); that the injector refuses X too, should a request reach
    // it, is shown against a real bridge in injector/test/revocation.test.ts.
    await sleep(POLL_INTERVAL_MS);

    const linesBefore = injectorExchangeLines(stack).length;
    for (const region of [undefined, "us-west-2", "eu-central-1"]) {
      const answer = await ask(X, region);
      expectContractError(answer, 403, "CredentialError");
      expect(answer.json.error.message).toBe("this identity has been revoked");
    }
    const reachedInjector = injectorExchangeLines(stack).slice(linesBefore);
    expect(reachedInjector, "refused by the sidecar: nothing reached the injector").toEqual([]);
    // Nothing was stored for X: L2 has no entry for its key.
    const inL2 = await request(`${stack.parts.bridge.url}/v1/cred/${encodeURIComponent(`cred:${X}:aws_s3:us-east-1`)}`, { tls: stack.l2.bridgeTls });
    expect(inL2.status).toBe(404);

    // Prefix-precise, and other identities untouched: served from L1, and fresh from L3.
    ledger.credentials(expectCredential(await ask(X_SIBLING, "us-west-2"), "L3", X_SIBLING));
    expectCredential(await ask(Y, "eu-west-1"), "L1", Y);
    ledger.credentials(expectCredential(await ask(Y, "ap-south-1"), "L3", Y));
  });

  it("stays refused after the injector restarts (its deny-list survives in the run directory)", async () => {
    await stack.parts.injector.stop();
    await stack.parts.injector.start();
    const answer = await ask(X, "ca-central-1");
    expectContractError(answer, 403, "CredentialError");
    expect(answer.json.error.message).toBe("this identity has been revoked");
    ledger.credentials(expectCredential(await ask(Y, "sa-east-1"), "L3", Y));
  });
});

describe("docker-compose.yml", () => {
  const compose = parse(readFileSync(path.join(projectRoot, "docker-compose.yml"), "utf8"), { merge: true }) as {
    services: Record<string, { command?: string[]; volumes?: string[]; depends_on?: Record<string, unknown> }>;
  };

  it("runs OPA with the same arguments as the native stack: token authentication, the access policy, the contract", () => {
    const opa = compose.services.opa;
    expect(opa.command).toEqual(opaServerArgs(`0.0.0.0:${DEFAULT_PORTS.opa}`, {
      policyDir: OPA_IN_CONTAINER.policyDir,
      authzPolicy: `${OPA_IN_CONTAINER.policyDir}/system/authz.rego`,
      authzDataFile: OPA_IN_CONTAINER.authzDataFile,
      contractFile: OPA_IN_CONTAINER.contractFile,
    }));
    expect(opa.command).toContain(`${CONTRACT_DATA_PATH}:${OPA_IN_CONTAINER.contractFile}`);
    expect(opa.volumes).toEqual(expect.arrayContaining([
      `./policy:${OPA_IN_CONTAINER.policyDir}:ro`,
      `./contract/contract.json:${OPA_IN_CONTAINER.contractFile}:ro`,
      `./${OPA_FILES.authzDataFile}:${OPA_IN_CONTAINER.authzDataFile}:ro`,
    ]));
    // The token itself is mounted into no container but the injector's (the project mount).
    for (const [name, service] of Object.entries(compose.services)) {
      expect((service.volumes ?? []).some((volume) => volume.includes("opa-token")), name).toBe(false);
    }
    expect(opa.depends_on).toHaveProperty("setup");
  });

  it("gives the injector the token file and the bridge's revocation log (what setup writes)", async () => {
    const config = parseConfig(
      JSON.parse(JSON.stringify(await composeInjectorConfig(defaultDevIdentityDir))),
      path.join(projectRoot, RENDERED_DIR),
    );
    expect(config.opa).toMatchObject({ url: `http://${SERVICES.opa}:${DEFAULT_PORTS.opa}`, token_file: path.join(projectRoot, OPA_FILES.tokenFile) });
    expect(statSync(config.opa.token_file!).mode & 0o777).toBe(0o600);
    // The opa container's user reads the hash; it is no secret.
    expect(readFileSync(path.join(projectRoot, OPA_FILES.authzDataFile), "utf8")).toMatch(/^\{"hexr_authz":\{"token_sha256":"[0-9a-f]{64}"\}\}\n$/);
    expect(config.revocation).toMatchObject({
      bridge_url: `https://${SERVICES.bridge}:${DEFAULT_PORTS.bridge}`,
      bridge_spiffe_id: BRIDGE_SPIFFE_ID,
      state_file: path.join(projectRoot, RENDERED_DIR, "injector-revocations.json"),
    });
  });
});

describe("logs", () => {
  it("contain no credential, JWT-SVID or OPA token", async () => {
    await expectNoSecretsInLogs(stack, ledger);
  });
});
