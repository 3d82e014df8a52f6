// The key hierarchy (KEK → DEK → value): values round-trip, every field of the binding is
// authenticated (change any one and decryption fails), the length-prefixed encoding never lets two
// bindings collide, DEKs are fresh per version, file KEKs wrap with their id and the binding as
// associated data, and key files are generated 0600 and refused when others may read them.
import { randomBytes } from "node:crypto";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { encodeAad, type Binding } from "../crypto/binding.ts";
import { openValue, rewrapDek, sealValue } from "../crypto/envelope.ts";
import { ensureKekFile, fileKek, readKekFile } from "../crypto/kek-file.ts";
import { encryptionContext } from "../crypto/kek-kms.ts";
import { KeyRing } from "../crypto/keyring.ts";
import { IntegrityError } from "../errors.ts";
import { tempDir } from "./helpers.ts";

const BINDING: Binding = { trustDomain: "hexr.local", tenant: "acme-corp", agent: "my-agent", scope: "researcher", name: "RESEARCH_DB_KEY", version: 3 };
const ring = (id = "k1", key = randomBytes(32)) => {
  const kek = fileKek(id, key);
  return new KeyRing(kek, [kek]);
};
const dir = tempDir();

afterAll(() => dir.remove());

describe("envelope encryption", () => {
  it("round-trips any value, with a fresh data key and nonce each time", async () => {
    const keyring = ring();
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "grapheme", maxLength: 200 }), async (value) => {
        const sealed = await sealValue(value, BINDING, keyring);
        expect(await openValue(sealed, BINDING, keyring)).toBe(value);
      }),
      { numRuns: 200 },
    );
    const a = await sealValue("same", BINDING, keyring);
    const b = await sealValue("same", BINDING, keyring);
    expect(a.nonce.equals(b.nonce)).toBe(false);
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
    expect(a.wrappedDek.equals(b.wrappedDek)).toBe(false);
    expect(a.ciphertext.includes(Buffer.from("same"))).toBe(false);
    expect(a.nonce).toHaveLength(12);
    expect(a.ciphertext).toHaveLength(4 + 16);
    expect(a.kekId).toBe("k1");
  });

  it("fails to decrypt under any other binding, and when any stored byte changes", async () => {
    const keyring = ring();
    const sealed = await sealValue("sk-live-value", BINDING, keyring);
    const changes: Partial<Binding>[] = [
      { trustDomain: "hexr.cloud" }, { tenant: "globex" }, { agent: "other-agent" }, { scope: "*" }, { scope: "writer" },
      { name: "OTHER" }, { version: 2 }, { version: 4 },
    ];
    for (const change of changes) {
      await expect(openValue(sealed, { ...BINDING, ...change }, keyring)).rejects.toBeInstanceOf(IntegrityError);
    }
    for (const field of ["nonce", "ciphertext", "wrappedDek"] as const) {
      for (const index of [0, sealed[field].length - 1]) {
        const damaged = Buffer.from(sealed[field]);
        damaged[index] ^= 1;
        await expect(openValue({ ...sealed, [field]: damaged }, BINDING, keyring)).rejects.toBeInstanceOf(IntegrityError);
      }
    }
    // Another value's data key with this value's ciphertext.
    const other = await sealValue("other", BINDING, keyring);
    await expect(openValue({ ...sealed, wrappedDek: other.wrappedDek }, BINDING, keyring)).rejects.toBeInstanceOf(IntegrityError);
  });

  it("encodes bindings injectively: no two tuples give the same associated data (property)", () => {
    const field = fc.string({ maxLength: 6, unit: fc.constantFrom("a", "b", "/", ":", "\u0000", "1") });
    const binding = fc.record({ trustDomain: field, tenant: field, agent: field, scope: field, name: field, version: fc.integer({ min: 0, max: 20 }) });
    fc.assert(
      fc.property(binding, binding, (x, y) => {
        const same = JSON.stringify(x) === JSON.stringify(y);
        expect(encodeAad("label", x).equals(encodeAad("label", y))).toBe(same);
      }),
      { numRuns: 5000 },
    );
    // The classic concatenation collision, explicitly.
    const ab = encodeAad("l", { ...BINDING, tenant: "ab", agent: "c" });
    const a_bc = encodeAad("l", { ...BINDING, tenant: "a", agent: "bc" });
    expect(ab.equals(a_bc)).toBe(false);
  });

  it("gives KMS the binding as its encryption context, one field per key", () => {
    expect(encryptionContext(BINDING)).toEqual({
      "hexr:purpose": "vault-dek", "hexr:trust_domain": "hexr.local", "hexr:tenant": "acme-corp", "hexr:agent": "my-agent",
      "hexr:scope": "researcher", "hexr:name": "RESEARCH_DB_KEY", "hexr:version": "3",
    });
  });
});

describe("file KEKs", () => {
  it("wrap with the KEK id as associated data: a data key claimed by another id does not unwrap", async () => {
    const key = randomBytes(32);
    const k1 = fileKek("k1", key);
    const renamed = fileKek("k2", key); // the same bytes under another id
    const dek = randomBytes(32);
    const wrapped = await k1.wrap(dek, BINDING);
    expect((await k1.unwrap(wrapped, BINDING)).equals(dek)).toBe(true);
    await expect(renamed.unwrap(wrapped, BINDING)).rejects.toBeInstanceOf(IntegrityError);
    await expect(k1.unwrap(wrapped, { ...BINDING, version: 4 })).rejects.toBeInstanceOf(IntegrityError);
    await expect(fileKek("k1", randomBytes(32)).unwrap(wrapped, BINDING)).rejects.toBeInstanceOf(IntegrityError);
    await expect(k1.unwrap(wrapped.subarray(1), BINDING)).rejects.toBeInstanceOf(IntegrityError);
  });

  it("re-wrap under the active KEK without touching the value", async () => {
    const old = fileKek("old", randomBytes(32));
    const active = fileKek("new", randomBytes(32));
    const before = new KeyRing(old, [old]);
    const both = new KeyRing(active, [old, active]);
    const sealed = await sealValue("rotate me", BINDING, before);
    const rewrapped = await rewrapDek(sealed.wrappedDek, sealed.kekId, BINDING, both);
    expect(rewrapped.kekId).toBe("new");
    const after = { ...sealed, ...rewrapped };
    expect(await openValue(after, BINDING, new KeyRing(active, [active]))).toBe("rotate me");
    await expect(openValue(sealed, BINDING, new KeyRing(active, [active]))).rejects.toThrow(/KEK old is not configured/);
  });

  it("are generated once, 32 random bytes in base64, mode 0600; never overwritten", () => {
    const file = path.join(dir.dir, "keys", "k1.key");
    expect(ensureKekFile(file)).toBe(true);
    const content = readFileSync(file, "utf8");
    expect(content).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(Buffer.from(content.trim(), "base64")).toHaveLength(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(ensureKekFile(file)).toBe(false);
    expect(readFileSync(file, "utf8")).toBe(content);
    expect(readKekFile(file).equals(Buffer.from(content.trim(), "base64"))).toBe(true);
  });

  it("are refused when group or others may read them, or when they hold no 32-byte key", () => {
    const open = path.join(dir.dir, "open.key");
    writeFileSync(open, randomBytes(32).toString("base64"), { mode: 0o644 });
    chmodSync(open, 0o644);
    expect(() => readKekFile(open)).toThrow(/chmod 600/);
    const short = path.join(dir.dir, "short.key");
    writeFileSync(short, "too short\n", { mode: 0o600 });
    expect(() => readKekFile(short)).toThrow(/32/);
    expect(() => readKekFile(path.join(dir.dir, "missing.key"))).toThrow(/does not exist/);
  });
});
