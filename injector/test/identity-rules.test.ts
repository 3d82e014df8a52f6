// The small rules behind authentication and the AWS exchange, one by one.
import { describe, expect, it } from "vitest";
import { parseAgentSpiffeId } from "../../contract/index.ts";
import { CallerPolicy } from "../auth/caller.ts";
import { mostSpecific } from "../identity-map.ts";
import { sessionName } from "../providers/aws.ts";
import { iamActionPrefix, readOnlySessionPolicy, serviceSessionPolicy } from "../providers/aws-session-policy.ts";
import { parseSpiffeId } from "../../contract/index.ts";

const agent = parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/content-crew/researcher")!;

describe("SPIFFE IDs", () => {
  it("parses agent IDs into their parts", () => {
    expect(agent).toEqual({ spiffeId: "spiffe://hexr.local/agent/acme-corp/content-crew/researcher", trustDomain: "hexr.local", tenant: "acme-corp", agent: "content-crew", role: "researcher" });
  });

  it.each([
    "spiffe://hexr.local/agent/acme-corp/content-crew",
    "spiffe://hexr.local/agent/acme-corp/content-crew/researcher/extra",
    "spiffe://hexr.local/sidecar/acme-corp/content-crew/researcher",
    "spiffe://hexr.local/agent/acme-corp//researcher",
    "spiffe://hexr.local/agent/acme-corp/../researcher",
    "spiffe://hexr.local/agent/acme-corp/crew/researcher?x=1",
    "spiffe://hexr.local:443/agent/acme-corp/crew/researcher",
    "spiffe://HEXR.local/agent/acme-corp/crew/researcher",
    "spiffe://hexr.local/agent/acme:corp/crew/researcher",
    "https://hexr.local/agent/acme-corp/crew/researcher",
    "spiffe://hexr.local/agent/acme-corp/crew/" + "r".repeat(2048),
  ])("rejects %s as an agent ID", (value) => {
    expect(parseAgentSpiffeId(value)).toBeUndefined();
  });

  it("parses other SPIFFE IDs and the trust domain alone", () => {
    expect(parseSpiffeId("spiffe://hexr.local/sidecar/acme-corp/dev-pod")?.segments).toEqual(["sidecar", "acme-corp", "dev-pod"]);
    expect(parseSpiffeId("spiffe://hexr.local")?.segments).toEqual([]);
  });

  it("holds other SPIFFE IDs to the contract's segment and trust-domain grammars", () => {
    expect(parseSpiffeId(`spiffe://hexr.local/sidecar/${"p".repeat(128)}`)).toBeDefined();
    expect(parseSpiffeId(`spiffe://hexr.local/sidecar/${"p".repeat(129)}`)).toBeUndefined();
    expect(parseSpiffeId("spiffe://hexr.local/sidecar/./pod")).toBeUndefined();
    expect(parseSpiffeId(`spiffe://${"d".repeat(256)}/sidecar/pod`)).toBeUndefined();
  });
});

describe("per-identity settings", () => {
  const map = { "*": "any", "acme-corp": "tenant", "acme-corp/content-crew": "agent", "acme-corp/content-crew/researcher": "role" };

  it("takes the most specific key", () => {
    expect(mostSpecific(map, agent)).toBe("role");
    expect(mostSpecific(map, parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/content-crew/writer")!)).toBe("agent");
    expect(mostSpecific(map, parseAgentSpiffeId("spiffe://hexr.local/agent/acme-corp/pipeline/main")!)).toBe("tenant");
    expect(mostSpecific(map, parseAgentSpiffeId("spiffe://hexr.local/agent/globex/pipeline/main")!)).toBe("any");
    expect(mostSpecific({ globex: "g" }, agent)).toBeUndefined();
  });

  it("does not match keys inherited from Object.prototype", () => {
    const odd = parseAgentSpiffeId("spiffe://hexr.local/agent/constructor/toString/valueOf")!;
    expect(mostSpecific({}, odd)).toBeUndefined();
  });
});

describe("AWS session details", () => {
  it("derives the session name from the SPIFFE ID", () => {
    expect(sessionName(agent)).toBe("hexr.acme-corp.content-crew.researcher");
  });

  it("keeps long session names within 64 characters and distinct", () => {
    const long = (role: string) => parseAgentSpiffeId(`spiffe://hexr.local/agent/${"t".repeat(30)}/${"a".repeat(30)}/${role}`)!;
    const [first, second] = [sessionName(long("role-one")), sessionName(long("role-two"))];
    expect(first).toHaveLength(64);
    expect(first).toMatch(/^[\w+=,.@-]+$/);
    expect(first).not.toBe(second);
  });

  it.each([
    ["aws_s3", "s3"], ["aws_dynamodb", "dynamodb"], ["aws_sqs", "sqs"], ["aws_lambda", "lambda"], ["aws_bedrock", "bedrock"], ["aws_ec2", "ec2"],
    ["aws_kinesis", "kinesis"], ["aws_my-svc", "my-svc"], ["aws_sso_oidc", "sso-oidc"],
    ["aws_bedrock-runtime", "bedrock"], ["aws_opensearch", "es"], ["aws_eventbridge", "events"], ["aws_stepfunctions", "states"],
    ["aws_cloudwatch-logs", "logs"], ["aws_elbv2", "elasticloadbalancing"],
  ])("maps %s to the IAM action prefix %s", (service, prefix) => {
    expect(iamActionPrefix(service)).toBe(prefix);
  });

  it("takes configured prefixes first", () => {
    expect(iamActionPrefix("aws_step_functions")).toBe("step-functions");
    expect(iamActionPrefix("aws_step_functions", { aws_step_functions: "states" })).toBe("states");
    expect(iamActionPrefix("aws_s3", { aws_s3: "s3-custom" })).toBe("s3-custom");
  });

  it("builds a session policy allowing the whole service and nothing else for a full grant", () => {
    expect(JSON.parse(serviceSessionPolicy("sqs"))).toEqual({
      Version: "2012-10-17",
      Statement: [{ Sid: "HexrServiceOnly", Effect: "Allow", Action: ["sqs:*"], Resource: "*" }],
    });
  });

  it("builds a read-only session policy for the service only", () => {
    expect(JSON.parse(readOnlySessionPolicy("dynamodb"))).toEqual({
      Version: "2012-10-17",
      Statement: [{
        Sid: "HexrReadOnly", Effect: "Allow", Resource: "*",
        Action: ["dynamodb:Get*", "dynamodb:List*", "dynamodb:Describe*", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan"],
      }],
    });
  });
});

describe("callers speaking for a tenant", () => {
  const policy = new CallerPolicy([
    { spiffe_id: "spiffe://hexr.local/hexr-system/*", tenants: ["acme-corp"], static_identities: [] },
    { spiffe_id: "spiffe://hexr.local/ops/break-glass", tenants: ["*"], static_identities: [] },
  ]);
  const allowed = (caller: string, who = agent) => {
    try {
      policy.check(caller, who);
      return true;
    } catch {
      return false;
    }
  };

  it("lets a sidecar or agent of the same trust domain and tenant speak", () => {
    expect(allowed("spiffe://hexr.local/sidecar/acme-corp/pod-1")).toBe(true);
    expect(allowed("spiffe://hexr.local/agent/acme-corp/other/main")).toBe(true);
  });

  it("refuses other tenants, other trust domains and other kinds of workload", () => {
    expect(allowed("spiffe://hexr.local/sidecar/globex/pod-1")).toBe(false);
    expect(allowed("spiffe://other.domain/sidecar/acme-corp/pod-1")).toBe(false);
    expect(allowed("spiffe://hexr.local/batch/acme-corp/job")).toBe(false);
    expect(allowed("spiffe://hexr.local/sidecar")).toBe(false);
  });

  it("applies configured rules, by prefix or exactly", () => {
    expect(allowed("spiffe://hexr.local/hexr-system/gateway")).toBe(true);
    expect(allowed("spiffe://hexr.local/hexr-system-evil/gateway")).toBe(false);
    expect(allowed("spiffe://hexr.local/hexr-system/gateway", parseAgentSpiffeId("spiffe://hexr.local/agent/globex/a/b")!)).toBe(false);
    expect(allowed("spiffe://hexr.local/ops/break-glass", parseAgentSpiffeId("spiffe://hexr.local/agent/globex/a/b")!)).toBe(true);
    expect(allowed("spiffe://hexr.local/ops/break-glass/sub")).toBe(false);
  });
});

describe("callers asserting static identities", () => {
  const SIDECAR = "spiffe://hexr.local/sidecar/acme-corp/pod-1";
  const policy = new CallerPolicy([
    { spiffe_id: SIDECAR, tenants: [], static_identities: ["spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main", "spiffe://hexr.local/agent/acme-corp/content-crew/*"] },
    { spiffe_id: "spiffe://hexr.local/hexr-system/*", tenants: ["*"], static_identities: [] },
  ]);
  const mayAssert = (caller: string, spiffeId: string) => {
    try {
      policy.checkAssertion(caller, spiffeId);
      return true;
    } catch {
      return false;
    }
  };

  it("allows exactly the listed identities, and those under a listed prefix", () => {
    expect(mayAssert(SIDECAR, "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main")).toBe(true);
    expect(mayAssert(SIDECAR, "spiffe://hexr.local/agent/acme-corp/content-crew/writer")).toBe(true);
  });

  it("refuses anything else, even of the same tenant, and prefixes are cut at a path boundary", () => {
    expect(mayAssert(SIDECAR, "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/other")).toBe(false);
    expect(mayAssert(SIDECAR, "spiffe://hexr.local/agent/acme-corp/research-analyst/main")).toBe(false);
    expect(mayAssert(SIDECAR, "spiffe://hexr.local/agent/acme-corp/content-crew-evil/writer")).toBe(false);
  });

  it("gives no caller the right implicitly: not a same-tenant sidecar, not a rule that lets it relay for every tenant", () => {
    expect(mayAssert("spiffe://hexr.local/sidecar/acme-corp/pod-2", "spiffe://hexr.local/agent/acme-corp/multi-cloud-analyst/main")).toBe(false);
    expect(mayAssert("spiffe://hexr.local/hexr-system/gateway", "spiffe://hexr.local/agent/acme-corp/content-crew/writer")).toBe(false);
  });
});
