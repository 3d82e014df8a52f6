// A small SPIFFE Workload API client (there is no maintained SPIFFE library for Node): the unary
// FetchJWTSVID call over gRPC on the agent's Unix socket, with the header every Workload API call
// must carry (`workload.spiffe.io: true`). The JWT-SVID is kept until a minute before its `exp`
// (or half its remaining life, if shorter), then fetched again.
import { fileURLToPath } from "node:url";
import { AuthenticationError, HexrError } from "./errors.ts";
import { decodeJwtSvid, requireUnexpired, type JwtSvid, type JwtSvidSource } from "./identity.ts";

export const WORKLOAD_PROTO = fileURLToPath(new URL("../proto/workload.proto", import.meta.url));
const REFETCH_BEFORE_EXP_S = 60;
const DEFAULT_DEADLINE_MS = 5_000;

export interface WorkloadApiOptions {
  /** SPIFFE_ENDPOINT_SOCKET: unix:///path/to/agent.sock (or unix:/path). */
  socket: string;
  audience: string;
  /** Which SPIFFE ID to ask for when the workload has several (default: the first returned). */
  spiffeId?: string;
  deadlineMs?: number;
}

type FetchJwtSvid = (
  request: { audience: string[]; spiffe_id: string },
  metadata: unknown,
  options: { deadline: Date },
  callback: (error: (Error & { code?: number; details?: string }) | null, response?: { svids?: { spiffe_id: string; svid: string }[] }) => void,
) => void;

async function loadGrpc() {
  try {
    const grpc = await import("@grpc/grpc-js");
    const protoLoader = await import("@grpc/proto-loader");
    return { grpc, protoLoader };
  } catch {
    throw new HexrError("the SPIFFE Workload API needs @grpc/grpc-js and @grpc/proto-loader: npm install @grpc/grpc-js @grpc/proto-loader", {
      type: "MissingDependency",
    });
  }
}

/** gRPC wants unix:///abs/path or unix:/abs/path; the SPIFFE spec writes unix:///abs/path. */
export function grpcTarget(socket: string): string {
  if (socket.startsWith("unix://")) return `unix:${socket.slice("unix://".length)}`;
  if (socket.startsWith("unix:") || socket.startsWith("tcp:")) return socket.replace(/^tcp:\/\//, "");
  if (socket.startsWith("/")) return `unix:${socket}`;
  return socket;
}

export class WorkloadApiJwtSvidSource implements JwtSvidSource {
  readonly description: string;
  private client: { FetchJWTSVID: FetchJwtSvid; close(): void } | undefined;
  private metadata: unknown;
  private current: JwtSvid | undefined;
  private refetchAt = 0;
  private inflight: Promise<JwtSvid> | undefined;

  constructor(private readonly options: WorkloadApiOptions) {
    this.description = `the SPIFFE Workload API at ${options.socket}`;
  }

  async fetchJwtSvid(): Promise<JwtSvid> {
    if (this.current && Date.now() < this.refetchAt) return requireUnexpired(this.current, this.description);
    this.inflight ??= this.fetchFresh().finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  private async connect() {
    if (this.client) return this.client;
    const { grpc, protoLoader } = await loadGrpc();
    const definition = await protoLoader.load(WORKLOAD_PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      SpiffeWorkloadAPI: new (target: string, credentials: unknown) => { FetchJWTSVID: FetchJwtSvid; close(): void };
    };
    this.client = new loaded.SpiffeWorkloadAPI(grpcTarget(this.options.socket), grpc.credentials.createInsecure());
    const metadata = new grpc.Metadata();
    metadata.set("workload.spiffe.io", "true");
    this.metadata = metadata;
    return this.client;
  }

  private async fetchFresh(): Promise<JwtSvid> {
    const client = await this.connect();
    const response = await new Promise<{ svids?: { spiffe_id: string; svid: string }[] }>((resolve, reject) => {
      client.FetchJWTSVID(
        { audience: [this.options.audience], spiffe_id: this.options.spiffeId ?? "" },
        this.metadata,
        { deadline: new Date(Date.now() + (this.options.deadlineMs ?? DEFAULT_DEADLINE_MS)) },
        (error, answer) => {
          if (error) {
            // The status code and the server's details only: never anything of a token.
            reject(new AuthenticationError(`no JWT-SVID from ${this.description}: gRPC status ${error.code ?? "?"} ${error.details ?? ""}`.trim()));
          } else {
            resolve(answer ?? {});
          }
        },
      );
    });
    const chosen = (response.svids ?? []).find((s) => !this.options.spiffeId || s.spiffe_id === this.options.spiffeId);
    if (!chosen) throw new AuthenticationError(`no JWT-SVID from ${this.description}: it returned none`);
    const svid = requireUnexpired(decodeJwtSvid(chosen.svid, this.description), this.description);
    const nowS = Date.now() / 1000;
    this.current = svid;
    this.refetchAt = Math.min(svid.expiresAt - REFETCH_BEFORE_EXP_S, nowS + (svid.expiresAt - nowS) / 2) * 1000;
    return svid;
  }

  close(): void {
    this.client?.close();
    this.client = undefined;
  }
}
