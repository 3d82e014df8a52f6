// npm run token -- <spiffe-id> [--ttl SECONDS] [--aud AUDIENCE] [--dir DIR]
// Prints a dev JWT-SVID for the SPIFFE ID on stdout and nothing else, so that
// `TOKEN=$(npm run -s token -- spiffe://...)` works. Errors go to stderr with exit code 2.
import { parseArgs } from "node:util";
import { DEV_TOKEN_TTL_SECONDS, mintJwtSvid } from "../support/dev-identity.ts";

const USAGE = "usage: npm run token -- <spiffe-id> [--ttl SECONDS] [--aud AUDIENCE] [--dir DIR]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ttl: { type: "string" }, aud: { type: "string" }, dir: { type: "string" } },
    });
  } catch (error) {
    fail((error as Error).message);
  }
}

const { values, positionals } = parseCommandLine(process.argv.slice(2));
if (positionals.length !== 1) fail("exactly one SPIFFE ID is required");
const ttlSeconds = values.ttl === undefined ? DEV_TOKEN_TTL_SECONDS : Number(values.ttl);
if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) fail(`--ttl must be a positive whole number of seconds, not ${values.ttl}`);

try {
  const token = await mintJwtSvid(positionals[0], { ttlSeconds, audience: values.aud, dir: values.dir });
  process.stdout.write(token + "\n");
} catch (error) {
  fail((error as Error).message);
}
