// An AssemblyScript transform (npm run build passes it to asc with --transform): in every
// `message("...")` in assembly/, the literal becomes the address of its size (one byte) and its
// UTF-8 bytes in static memory; message() (assembly/util/message.ts) makes the string from them
// when the call runs.
//
// Why: AssemblyScript keeps each string literal as UTF-16 behind a 20-byte header, so an ASCII text
// costs more than twice its length; the filter's error texts, configuration field names and metric
// names were a third of the release module. They are needed only off the path that serves a
// credential, where decoding them costs nothing that matters. Without this transform the build
// fails: message() takes an address, not a string.
import { Transform } from "assemblyscript/dist/transform.js";
import { LiteralKind, Node, NodeKind } from "assemblyscript";

const CALLEE = "message";
/** The size is stored in one byte. */
const MAX_BYTES = 255;

export default class Utf8Messages extends Transform {
  afterParse(parser) {
    const seen = new Set();
    for (const source of parser.sources) {
      if (source.normalizedPath.startsWith("assembly/")) visit(source, seen);
    }
  }
}

/** Every node below `node` (the AST has no generic visitor: its nodes are plain objects). */
function visit(node, seen) {
  if (node === null || typeof node !== "object" || seen.has(node)) return;
  seen.add(node);
  if (isMessageCall(node)) storeLiteral(node);
  for (const key of Object.keys(node)) {
    if (key !== "range") visit(node[key], seen);
  }
}

function isMessageCall(node) {
  return node.kind === NodeKind.Call && node.expression.kind === NodeKind.Identifier && node.expression.text === CALLEE;
}

/** message("text") → message(memory.data<u8>([size, ...the UTF-8 of text])). */
function storeLiteral(call) {
  const range = call.range;
  const literal = call.args.length === 1 ? call.args[0] : null;
  if (literal === null || literal.kind !== NodeKind.Literal || literal.literalKind !== LiteralKind.String) {
    throw new Error(`${range.source.normalizedPath}: ${CALLEE}() takes one string literal`);
  }
  const bytes = [...Buffer.from(literal.value, "utf8")];
  if (bytes.length > MAX_BYTES) throw new Error(`${range.source.normalizedPath}: a message has at most ${MAX_BYTES} bytes`);
  const integer = (value) => Node.createIntegerLiteralExpression(globalThis.i64_new(value, 0), range);
  const name = (text) => Node.createIdentifierExpression(text, range);
  const u8 = Node.createNamedType(Node.createSimpleTypeName("u8", range), null, false, range);
  call.args[0] = Node.createCallExpression(
    Node.createPropertyAccessExpression(name("memory"), name("data"), range), [u8],
    [Node.createArrayLiteralExpression([bytes.length, ...bytes].map(integer), range)], range,
  );
}
