// GET {LLM_USAGE_PATH}: the usage this sidecar recorded (ledger.ts), one row per identity,
// provider and model. An admin (llm.admin_spiffe_ids) reads every row; any other caller only its own.
import { hasSeveralTokens } from "../doors/credential-door";
import { Door } from "../doors/door";
import { credentialError, ErrorType, Rejection, severalTokens, unauthenticated } from "../filter/errors";
import { FilterState } from "../filter/state";
import { IdentitySource, resolveIdentity } from "../input/identity";
import { Header, HeaderPairs } from "../proxy-wasm/host";
import { Action } from "../proxy-wasm/types";
import { bytesEqualAt, decimal } from "../util/ascii";
import { message } from "../util/message";
import { LLM_USAGE_COUNTS } from "./contract";
import { LlmState } from "./door";
import { usageRows } from "./ledger";

export class UsageEndpoint extends Door {
  constructor(state: FilterState, contextId: u32, private readonly llm: LlmState) {
    super(state, contextId);
  }

  onHeaders(headers: HeaderPairs, endOfStream: bool): Action {
    if (!headers.find(":method") || !bytesEqualAt(headers.foundAt, headers.foundSize, "GET")) {
      return this.reply(405, "hexr_llm_rejected", new Rejection(405, ErrorType.BadRequest, message("use GET for the usage summary")).body(),
        [new Header("content-type", "application/json"), new Header("allow", "GET")]);
    }
    if (hasSeveralTokens(headers)) return this.reject(severalTokens());
    const resolved = resolveIdentity(this.state.config.identity);
    if (resolved.identity === null) return this.reject(unauthenticated(resolved.reason));
    const identity = resolved.identity!;
    if (identity.source == IdentitySource.Static) return this.reject(credentialError(403, message("usage is shown to a caller's own SVID only")));
    const everyone = this.llm.config.adminSpiffeIds.includes(identity.spiffe.uri);
    const rows = usageRows();
    let json = "{\"rows\":[";
    let first = true;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i];
      if (!everyone && row.spiffeId != identity.spiffe.uri) continue;
      json += (first ? "" : ",") + "{\"spiffe_id\":\"" + row.spiffeId + "\",\"provider\":\"" + row.provider + "\",\"model\":\"" + row.model + "\"";
      for (let f = 0; f < LLM_USAGE_COUNTS.length; f++) json += ",\"" + LLM_USAGE_COUNTS[f] + "\":" + decimal(row.totals[f]);
      json += "}";
      first = false;
    }
    json += "]}";
    return this.reply(200, "hexr_llm_usage", Uint8Array.wrap(String.UTF8.encode(json)),
      [new Header("content-type", "application/json"), new Header("cache-control", "no-store")]);
  }
}
