// Keys that are in L2 (Valkey, through the bridge) and in no sidecar's L1 yet: the supply of
// L1-miss/L2-hit requests. Entries are written through the bridge's own API, in the filter's
// value format (agent.ts l2Value), ahead of the measurement that needs them.
import { bridgePut, cacheKey, KeySequence, l2Value } from "./agent.ts";
import { sendAll } from "./fill.ts";

export class L2Pool {
  /** Keys 0 … filled − 1 of the family are in L2. */
  private filled = 0;
  readonly keys: KeySequence;

  constructor(
    private readonly options: {
      bridgeUrl: string;
      /** The bridge serves only callers with a certificate it knows (Stack.l2.bridgeTls). */
      bridgeTls: { cert: string; key: string; ca: string };
      spiffeId: string;
      /** A real injector answer, the template of every value. */
      credentialBody: string;
      /** Expiry written into every value (epoch seconds). */
      expiresAt: number;
      prefix: string;
    },
  ) {
    this.keys = new KeySequence(options.prefix);
  }

  get size(): number {
    return this.filled;
  }

  /** Makes sure keys 0 … upTo − 1 are in L2. */
  async ensure(upTo: number): Promise<void> {
    if (upTo <= this.filled) return;
    const { bridgeUrl, bridgeTls, spiffeId, credentialBody, expiresAt } = this.options;
    const from = this.filled;
    const ttlMs = Math.max(1000, (expiresAt - Math.floor(Date.now() / 1000)) * 1000);
    await sendAll({
      baseUrl: bridgeUrl,
      tls: bridgeTls,
      count: upTo - from,
      request: (i) => {
        const region = this.keys.region(from + i);
        return bridgePut(cacheKey(spiffeId, region), l2Value(credentialBody, region, expiresAt), ttlMs);
      },
      expectStatus: 204,
      concurrency: 32,
    });
    this.filled = upTo;
  }
}
