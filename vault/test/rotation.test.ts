// KEK rotation, with key files on each engine and from a key file to AWS KMS (moto): every data
// key is re-wrapped under the active KEK while the value ciphertexts stay byte for byte what they
// were; afterwards the old KEK can leave the config and everything still reads, and before that
// the vault refuses to start without it. KMS binds each wrapped key to its row too, and an
// unreachable KMS is a 503 with nothing stored.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { CreateKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAudit } from "../audit.ts";
import { parseConfig } from "../config.ts";
import { checkKeyRing, loadKeyRing } from "../keys.ts";
import { createLogger } from "../log.ts";
import { rotateKek } from "../rotate.ts";
import { startVault } from "../server.ts";
import { openStore } from "../store/open.ts";
import { startMoto, type MotoServer } from "../../support/moto.ts";
import { projectRoot } from "../../support/tools.ts";
import {
  agentId, ENGINES, engineFixture, expectError, SIDECAR_ACME, startTestVault, tempDir, testIdentity, vaultConfig, type EngineFixture,
} from "./helpers.ts";

const run = promisify(execFile);
const log = createLogger("silent");
// moto accepts any credentials; the AWS SDK's default chain (what the vault uses) reads these.
process.env.AWS_ACCESS_KEY_ID = "testing";
process.env.AWS_SECRET_ACCESS_KEY = "testing";
process.env.AWS_REGION = "us-east-1";

const SECRETS = [
  { as: agentId("acme-corp", "my-agent", "researcher"), name: "SHARED", value: "shared-value", scope: undefined },
  { as: agentId("acme-corp", "my-agent", "researcher"), name: "RESEARCH", value: "research-value", scope: "researcher" },
  { as: agentId("acme-corp", "other", "main"), name: "SHARED", value: "other-agent-value", scope: undefined },
  { as: agentId("globex", "g", "main"), name: "G", value: "globex-value", scope: undefined },
];

interface Row { name: string; agent: string; version: number; nonce: Buffer; ciphertext: Buffer; kek_id: string; wrapped_dek: Buffer }

/** Puts every secret twice (two versions) through a vault with `kek`, then stops it. */
async function seed(config: Record<string, unknown>): Promise<void> {
  const vault = await startTestVault(config);
  try {
    const acme = await vault.client(SIDECAR_ACME);
    const globex = await vault.client("spiffe://hexr.local/sidecar/globex/pod-1");
    for (const round of [1, 2]) {
      for (const secret of SECRETS) {
        const client = secret.as.includes("/globex/") ? globex : acme;
        const reply = await client.put(secret.name, `${secret.value}-${round}`, { as: secret.as, scope: secret.scope });
        expect(reply.status).toBe(201);
      }
    }
  } finally {
    await vault.close();
  }
}

/** Every secret reads back, both versions, through a vault with `config`. */
async function expectAllReadable(config: Record<string, unknown>): Promise<void> {
  const vault = await startTestVault(config);
  try {
    const acme = await vault.client(SIDECAR_ACME);
    const globex = await vault.client("spiffe://hexr.local/sidecar/globex/pod-1");
    for (const secret of SECRETS) {
      const client = secret.as.includes("/globex/") ? globex : acme;
      for (const version of [1, 2]) {
        expect((await client.get(secret.name, { as: secret.as, version })).json().value).toBe(`${secret.value}-${version}`);
      }
    }
    expect(vault.logs()).not.toMatch(/-value-/);
  } finally {
    await vault.close();
  }
}

const sorted = (rows: Row[]) => rows.map((row) => ({ ...row, version: Number(row.version) })).sort((a, b) => `${a.agent}/${a.name}/${a.version}`.localeCompare(`${b.agent}/${b.name}/${b.version}`));

describe.each(ENGINES)("KEK rotation with key files on %s", (engine) => {
  let fixture: EngineFixture;
  const keys = tempDir();

  beforeAll(() => {
    fixture = engineFixture(engine);
  });

  afterAll(async () => {
    await fixture?.close();
    keys.remove();
  });

  it("re-wraps every data key, leaves the ciphertexts alone, and lets the old KEK go", async () => {
    const id = await testIdentity();
    const store = await fixture.freshStore();
    const k1 = { id: "k1", file: path.join(keys.dir, `${engine}-k1.key`) };
    const k2 = { id: "k2", file: path.join(keys.dir, `${engine}-k2.key`) };
    const onlyK1 = vaultConfig(id, store, keys.dir, { kek: { active: "k1", keys: [k1], generate_missing: true } });
    const both = vaultConfig(id, store, keys.dir, { kek: { active: "k2", keys: [k1, k2], generate_missing: true } });
    const onlyK2 = vaultConfig(id, store, keys.dir, { kek: { active: "k2", keys: [k2] } });
    await seed(onlyK1);
    const rows = () => fixture.sql<Row>(store, "SELECT name, agent, version, nonce, ciphertext, kek_id, wrapped_dek FROM secret_versions");
    const before = sorted(await rows());
    expect(before).toHaveLength(8);
    expect(new Set(before.map((row) => row.kek_id))).toEqual(new Set(["k1"]));

    // A vault started without k1 would not read those secrets: it refuses to start at all.
    await startTestVault(both).then((vault) => vault.close()); // generates k2
    await expect(startVault(onlyK2, { logger: log })).rejects.toThrow(/KEKs the config does not list: k1 \(8 versions\)/);

    if (engine === "sqlite") {
      const configFile = path.join(keys.dir, "rotate.json");
      writeFileSync(configFile, JSON.stringify(both));
      const { stdout } = await run(process.execPath, ["--import", "tsx", "vault/main.ts", "rotate-kek", "--config", configFile], { cwd: projectRoot });
      expect(JSON.parse(stdout)).toEqual({ active: "k2", rewrapped: 8, skipped: 0, failed: 0, usage: { k2: 8 } });
    } else {
      const config = parseConfig(both);
      const opened = await openStore(config.store, log);
      const ring = loadKeyRing(config.kek, log);
      try {
        expect(await rotateKek(opened, ring, log)).toEqual({ active: "k2", rewrapped: 8, skipped: 0, failed: 0, usage: { k2: 8 } });
        // Again: nothing left to do.
        expect(await rotateKek(opened, ring, log)).toMatchObject({ rewrapped: 0, usage: { k2: 8 } });
        expect(await verifyAudit(opened)).toMatchObject({ ok: true });
      } finally {
        ring.close();
        await opened.close();
      }
    }

    const after = sorted(await rows());
    expect(after).toHaveLength(8);
    for (const [index, row] of after.entries()) {
      const old = before[index];
      expect([row.agent, row.name, row.version]).toEqual([old.agent, old.name, old.version]);
      expect(Buffer.compare(row.nonce, old.nonce)).toBe(0);
      expect(Buffer.compare(row.ciphertext, old.ciphertext)).toBe(0);
      expect(row.kek_id).toBe("k2");
      expect(Buffer.compare(row.wrapped_dek, old.wrapped_dek)).not.toBe(0);
    }
    await expectAllReadable(onlyK2);
    const audit = await fixture.sql<{ operation: string; name: string; status: number }>(store, "SELECT operation, name, status FROM audit WHERE operation = 'rotate_kek'");
    expect(audit[0]).toEqual({ operation: "rotate_kek", name: "k2", status: 200 });
  });

  it("refuses to start with a key file that is not the one that wrapped the data keys", async () => {
    const id = await testIdentity();
    const store = await fixture.freshStore();
    const k1 = path.join(keys.dir, `${engine}-wrong.key`);
    await seed(vaultConfig(id, store, keys.dir, { kek: { active: "k1", keys: [{ id: "k1", file: k1 }], generate_missing: true } }));
    writeFileSync(k1, randomBytes(32).toString("base64") + "\n", { mode: 0o600 });
    await expect(startVault(vaultConfig(id, store, keys.dir, { kek: { active: "k1", keys: [{ id: "k1", file: k1 }] } }), { logger: log }))
      .rejects.toThrow(/KEK k1 does not unwrap the data keys stored under its id/);
  });
});

describe("KEK in AWS KMS (moto)", () => {
  let moto: MotoServer;
  let fixture: EngineFixture;
  let kmsKeyId: string;
  const keys = tempDir();

  beforeAll(async () => {
    [moto] = await Promise.all([startMoto()]);
    fixture = engineFixture("sqlite");
    const kms = new KMSClient({ endpoint: moto.url, region: "us-east-1" });
    kmsKeyId = (await kms.send(new CreateKeyCommand({ Description: "hexr vault KEK" }))).KeyMetadata!.KeyId!;
    kms.destroy();
  });

  afterAll(async () => {
    await moto?.stop();
    await fixture?.close();
    keys.remove();
  });

  const kmsSection = (active: string, withFile: boolean, timeoutMs = 3000) => ({
    active,
    keys: [...(withFile ? [{ id: "file-1", file: path.join(keys.dir, "file-1.key") }] : []), { id: "kms-1", kms_key_id: kmsKeyId }],
    generate_missing: true,
    kms: { region: "us-east-1", endpoint: moto.url, timeout_ms: timeoutMs },
  });

  it("rotates from a key file to KMS; the file can then go", async () => {
    const id = await testIdentity();
    const store = await fixture.freshStore();
    await seed(vaultConfig(id, store, keys.dir, { kek: { active: "file-1", keys: [{ id: "file-1", file: path.join(keys.dir, "file-1.key") }], generate_missing: true } }));
    const before = sorted(await fixture.sql<Row>(store, "SELECT name, agent, version, nonce, ciphertext, kek_id, wrapped_dek FROM secret_versions"));
    const config = parseConfig(vaultConfig(id, store, keys.dir, { kek: kmsSection("kms-1", true) }));
    const opened = await openStore(config.store, log);
    const ring = loadKeyRing(config.kek, log);
    try {
      await checkKeyRing(opened, ring, log);
      expect(await rotateKek(opened, ring, log)).toMatchObject({ active: "kms-1", rewrapped: 8, failed: 0, usage: { "kms-1": 8 } });
    } finally {
      ring.close();
      await opened.close();
    }
    const after = sorted(await fixture.sql<Row>(store, "SELECT name, agent, version, nonce, ciphertext, kek_id, wrapped_dek FROM secret_versions"));
    for (const [index, row] of after.entries()) {
      expect(Buffer.compare(row.ciphertext, before[index].ciphertext)).toBe(0);
      expect(Buffer.compare(row.nonce, before[index].nonce)).toBe(0);
      expect(row.kek_id).toBe("kms-1");
    }
    await expectAllReadable(vaultConfig(id, store, keys.dir, { kek: kmsSection("kms-1", false) }));
  });

  it("serves puts and gets with KMS active; KMS refuses a wrapped key moved to another row", async () => {
    const id = await testIdentity();
    const store = await fixture.freshStore();
    const vault = await startTestVault(vaultConfig(id, store, keys.dir, { kek: kmsSection("kms-1", false) }));
    try {
      const acme = await vault.client(SIDECAR_ACME);
      const victim = agentId("acme-corp", "victim", "main");
      const thief = agentId("acme-corp", "thief", "main");
      await acme.put("K", "kms-victim-value", { as: victim });
      await acme.put("K", "kms-thief-value", { as: thief });
      expect((await acme.get("K", { as: victim })).json().value).toBe("kms-victim-value");
      await fixture.sql(
        store,
        `UPDATE secret_versions SET nonce = (SELECT nonce FROM secret_versions WHERE agent = 'victim'),
           ciphertext = (SELECT ciphertext FROM secret_versions WHERE agent = 'victim'),
           wrapped_dek = (SELECT wrapped_dek FROM secret_versions WHERE agent = 'victim') WHERE agent = 'thief'`,
      );
      expectError(await acme.get("K", { as: thief }), 503, "CredentialError", ["kms-victim-value"]);
      expect(vault.logs()).toMatch(/InvalidCiphertextException/);
      expect(vault.logs()).not.toMatch(/kms-victim-value/);
    } finally {
      await vault.close();
    }
  });

  it("answers 503 and stores nothing while KMS is unreachable", async () => {
    const id = await testIdentity();
    const store = await fixture.freshStore();
    const vault = await startTestVault(vaultConfig(id, store, keys.dir, { kek: kmsSection("kms-1", false, 500) }));
    try {
      const acme = await vault.client(SIDECAR_ACME);
      await acme.put("BEFORE", "before-value");
      moto.pause();
      try {
        expectError(await acme.put("DURING", "during-value"), 503, "CredentialError", ["during-value"]);
        expectError(await acme.get("BEFORE"), 503, "CredentialError", ["before-value"]);
      } finally {
        moto.resume();
      }
      expectError(await acme.get("DURING"), 404, "BadRequest");
      expect((await acme.get("BEFORE")).json().value).toBe("before-value");
      const statuses = await fixture.sql<{ operation: string; name: string; status: number }>(store, "SELECT operation, name, status FROM audit ORDER BY seq");
      expect(statuses.map((r) => [r.operation, r.name, r.status])).toEqual([
        ["put", "BEFORE", 201], ["put", "DURING", 503], ["get", "BEFORE", 503], ["get", "DURING", 404], ["get", "BEFORE", 200],
      ]);
    } finally {
      await vault.close();
    }
  });
});
