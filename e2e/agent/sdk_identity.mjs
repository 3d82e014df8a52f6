// The Hexr SDK for TypeScript in a role process: its identity from the SPIFFE Workload API
// (SPIFFE_ENDPOINT_SOCKET), then one exchange through the sidecar (HEXR_SIDECAR_URL). Prints one
// JSON line: the SPIFFE ID it found and, per service, the SPIFFE ID its credential was issued to or
// the error's type and status. Never a token or a credential.
import { hexrClient } from "../../sdk/typescript/dist/index.js";

const client = hexrClient();
const report = { spiffe_id: await client.spiffeId(), results: {} };
for (const service of process.argv.slice(2)) {
  try {
    const resolved = await client.resolve(service);
    report.results[service] = { granted: true, spiffe_id: resolved.answer.spiffe_id };
  } catch (error) {
    report.results[service] = { granted: false, type: error.type, status: error.status };
  }
}
console.log(JSON.stringify(report));
process.exit(0);
