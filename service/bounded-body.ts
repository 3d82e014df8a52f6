// A request body read within a byte limit: refused as soon as it is known to be larger (by its
// content-length, or by what has arrived), so an oversized body is never held in memory.
import type { IncomingMessage } from "node:http";

/** The whole body, or `tooLarge()` as soon as it is known to exceed `limit` bytes. */
export function readBoundedBody(request: IncomingMessage, limit: number, tooLarge: () => Error): Promise<Buffer> {
  if (Number(request.headers["content-length"] ?? 0) > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        request.off("data", onData);
        chunks.length = 0;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    request.on("data", onData);
    request.once("end", () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    request.once("error", reject);
  });
}
