import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canConnect } from "./processes.ts";
import { startFakeGcs, type FakeGcsServer } from "./fake-gcs.ts";

let gcs: FakeGcsServer;
beforeAll(async () => (gcs = await startFakeGcs()));
afterAll(() => gcs?.stop());

const json = async (response: Response) => ({ status: response.status, body: await response.json() });

describe("fake-gcs-server", () => {
  it("serves the JSON and upload APIs on loopback over plain HTTP", async () => {
    expect(gcs.url).toBe(`http://127.0.0.1:${gcs.port}`);
    const created = await json(
      await fetch(`${gcs.url}/storage/v1/b?project=hexr-test`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "hexr-support-test" }),
      }),
    );
    expect(created).toMatchObject({ status: 200, body: { name: "hexr-support-test" } });

    const uploaded = await json(
      await fetch(`${gcs.url}/upload/storage/v1/b/hexr-support-test/o?uploadType=media&name=notes%2Fa.txt`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: "hello",
      }),
    );
    expect(uploaded).toMatchObject({ status: 200, body: { name: "notes/a.txt", size: "5" } });

    const listed = await json(await fetch(`${gcs.url}/storage/v1/b/hexr-support-test/o`));
    expect(listed.body.items.map((item: { name: string }) => item.name)).toEqual(["notes/a.txt"]);
    const read = await fetch(`${gcs.url}/storage/v1/b/hexr-support-test/o/notes%2Fa.txt?alt=media`);
    expect(await read.text()).toBe("hello");
    // Its access log names the requests (method and path, never a header).
    expect(gcs.output()).toMatch(/POST \/upload\/storage\/v1\/b\/hexr-support-test\/o/);
  });

  it("keeps nothing once stopped", async () => {
    const port = gcs.port;
    await gcs.stop();
    expect(await canConnect(port)).toBe(false);
    gcs = await startFakeGcs();
    const listed = await (await fetch(`${gcs.url}/storage/v1/b?project=hexr-test`)).json();
    expect(listed.items ?? []).toEqual([]);
  });
});
