// A KEK that never leaves AWS KMS: each data key is sent to KMS Encrypt and stored as the
// ciphertext blob KMS returns; Decrypt gives it back. The encryption context carries the row's
// binding, so KMS itself refuses to unwrap a blob for another row, and CloudTrail records which
// namespace and secret every unwrap was for. Credentials come from the AWS SDK's default chain
// (environment, shared config, container or instance role); the endpoint is configurable (moto in
// tests, a VPC endpoint in production).
import { DecryptCommand, EncryptCommand, KMSClient } from "@aws-sdk/client-kms";
import { IntegrityError, KekUnavailable } from "../errors.ts";
import type { Binding } from "./binding.ts";
import type { KeyEncryptionKey } from "./keyring.ts";

export interface KmsSettings {
  region: string;
  /** null: AWS's own endpoint for the region. */
  endpoint: string | null;
  timeout_ms: number;
}

/** KMS errors that say the blob is not this key's for this context: the stored bytes are wrong, not KMS. */
const INTEGRITY_ERRORS = new Set(["InvalidCiphertextException", "IncorrectKeyException"]);

/** One client per endpoint and region, shared by every KMS KEK of the config. */
export function createKmsClient(settings: KmsSettings): KMSClient {
  return new KMSClient({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    maxAttempts: 2,
  });
}

/** The encryption context: string pairs, each field under its own key (so no two bindings collide). */
export function encryptionContext(binding: Binding): Record<string, string> {
  return {
    "hexr:purpose": "vault-dek",
    "hexr:trust_domain": binding.trustDomain,
    "hexr:tenant": binding.tenant,
    "hexr:agent": binding.agent,
    "hexr:scope": binding.scope,
    "hexr:name": binding.name,
    "hexr:version": String(binding.version),
  };
}

export function kmsKek(id: string, keyId: string, client: KMSClient, timeoutMs: number, ownsClient = false): KeyEncryptionKey {
  const send = async <T>(command: EncryptCommand | DecryptCommand): Promise<T> => {
    try {
      return (await client.send(command as never, { abortSignal: AbortSignal.timeout(timeoutMs) })) as T;
    } catch (error) {
      const name = (error as Error).name;
      if (INTEGRITY_ERRORS.has(name)) throw new IntegrityError(`KMS refused to unwrap the data key under KEK ${id} (${name})`);
      // Network, throttling, a disabled or deleted key, missing permissions: KMS cannot serve us now.
      throw new KekUnavailable(`KMS (KEK ${id}): ${name}`, { cause: error });
    }
  };
  return {
    id,
    kind: "kms",
    async wrap(dek, binding) {
      const output = await send<{ CiphertextBlob?: Uint8Array }>(
        new EncryptCommand({ KeyId: keyId, Plaintext: dek, EncryptionContext: encryptionContext(binding) }),
      );
      if (!output.CiphertextBlob) throw new KekUnavailable(`KMS (KEK ${id}) returned no ciphertext`);
      return Buffer.from(output.CiphertextBlob);
    },
    async unwrap(wrapped, binding) {
      const output = await send<{ Plaintext?: Uint8Array }>(
        new DecryptCommand({ KeyId: keyId, CiphertextBlob: wrapped, EncryptionContext: encryptionContext(binding) }),
      );
      if (!output.Plaintext || output.Plaintext.length !== 32) throw new IntegrityError(`KMS (KEK ${id}) returned no 32-byte data key`);
      return Buffer.from(output.Plaintext);
    },
    close() {
      if (ownsClient) client.destroy();
    },
  };
}
