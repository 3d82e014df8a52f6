// The `llm-provider` service of docker-compose.yml: the LLM provider emulator (support/llm-provider.ts)
// as `npm start` runs it (scripts/stack.ts: LLM_EMULATOR_PORT, the keys the samples store,
// LLM_EMULATOR_KEYS), on the compose network, where the sidecar's LLM route reaches it as
// http://llm-provider:15470 (stack/compose.ts LLM_PROVIDER_URL). Not published: no port of it
// leaves the compose network. Prints "listening on URL" once ready; SIGTERM or SIGINT stop it.
//   node --import tsx stack/compose-llm-provider.ts [--host ADDRESS] [--port N]   (default 0.0.0.0:15470)
import { parseArgs } from "node:util";
import { startLlmProvider } from "../support/llm-provider.ts";
import { LLM_EMULATOR_KEYS, LLM_EMULATOR_PORT } from "./defaults.ts";

const { values } = parseArgs({ options: { host: { type: "string", default: "0.0.0.0" }, port: { type: "string", default: String(LLM_EMULATOR_PORT) } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`llm-provider: --port must be an integer from 0 to 65535\n`);
  process.exit(2);
}
const provider = await startLlmProvider({ keys: LLM_EMULATOR_KEYS, port, host: values.host });
process.stdout.write(`listening on http://${values.host}:${provider.port}\n`);
const stop = () => void provider.stop().then(() => process.exit(0), () => process.exit(1));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
