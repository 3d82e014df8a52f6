// Development identity material, standing in for SPIRE on a laptop or in CI: an ES256 key that
// signs JWT-SVIDs (and its JWKS, which both the injector and Envoy's jwt_authn trust), and a dev
// CA that issues X.509-SVIDs for mTLS. Everything is generated once into a git-ignored folder
// (.dev/ by default) and reused; several processes may ask for it at the same time.
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import "reflect-metadata"; // @peculiar/x509 loads tsyringe, which needs the Reflect metadata polyfill
import * as x509 from "@peculiar/x509";
import { SignJWT, calculateJwkThumbprint, exportJWK, importPKCS8 } from "jose";
import { projectRoot } from "./tools.ts";
import { parseSpiffeId } from "../contract/index.ts";

export const DEV_TRUST_DOMAIN = "hexr.local";
export const DEV_AUDIENCE = "hexr-credential-injector";
export const DEV_ISSUER = "https://oidc.hexr.local";
export const DEV_TOKEN_TTL_SECONDS = 3600;
export const INJECTOR_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/hexr-system/credential-injector`;
export const DEFAULT_SIDECAR_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/sidecar/acme-corp/dev-pod`;
/** The L2 bridge's X.509-SVID: sidecars check it (Envoy's hexr_bridge cluster), Valkey may too. */
export const BRIDGE_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/hexr-system/bridge`;
/** Hexr Vault's X.509-SVID: sidecars check it (Envoy's hexr_vault cluster). */
export const VAULT_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/hexr-system/vault`;
/** Valkey's server certificate when it runs with TLS. */
export const VALKEY_SPIFFE_ID = `spiffe://${DEV_TRUST_DOMAIN}/hexr-system/valkey`;
export const defaultDevIdentityDir = path.join(projectRoot, ".dev");

export interface DevIdentityPaths {
  dir: string;
  /** `{"keys":[...]}` with the public half of the JWT-SVID signing key (Envoy `local_jwks`, injector `jwks_file`). */
  jwks: string;
  /** PKCS#8 PEM, ES256 (P-256). */
  signingKey: string;
  ca: string;
  caKey: string;
  injectorCert: string;
  injectorKey: string;
  sidecarCert: string;
  sidecarKey: string;
  listenerCert: string;
  listenerKey: string;
}

export interface X509SvidPaths {
  cert: string;
  key: string;
}

export interface MintOptions {
  audience?: string | string[];
  ttlSeconds?: number;
  dir?: string;
  /** Epoch seconds the token claims to be issued at (default now); tests use it to mint expired tokens. */
  issuedAt?: number;
}

const MANIFEST_VERSION = 1;
const DAY_MS = 24 * 3600 * 1000;
const CA_LIFETIME_MS = 10 * 365 * DAY_MS;
const LEAF_LIFETIME_MS = 365 * DAY_MS;
/** Material this close to expiry is regenerated rather than handed out. */
const RENEW_BEFORE_MS = 7 * DAY_MS;
const EC_KEY: EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

x509.cryptoProvider.set(crypto);

function pathsIn(dir: string): DevIdentityPaths {
  const file = (name: string) => path.join(dir, name);
  return {
    dir,
    jwks: file("jwks.json"),
    signingKey: file("jwt-signing-key.pem"),
    ca: file("ca.pem"),
    caKey: file("ca-key.pem"),
    injectorCert: file("injector.pem"),
    injectorKey: file("injector-key.pem"),
    sidecarCert: file("sidecar.pem"),
    sidecarKey: file("sidecar-key.pem"),
    listenerCert: file("listener.pem"),
    listenerKey: file("listener-key.pem"),
  };
}

/** Generates the dev identity material into `dir` unless a complete, unexpired set is already there. */
export async function ensureDevIdentity(dir: string = defaultDevIdentityDir): Promise<DevIdentityPaths> {
  const paths = pathsIn(path.resolve(dir));
  if (await isUsable(paths.dir)) return paths;
  await withLock(paths.dir, async () => {
    if (!(await isUsable(paths.dir))) await generateAll(paths);
  });
  return paths;
}

/** Mints a JWT-SVID for `spiffeId`, signed with the dev key (generated first if needed). */
export async function mintJwtSvid(spiffeId: string, options: MintOptions = {}): Promise<string> {
  requireSpiffeId(spiffeId);
  const paths = await ensureDevIdentity(options.dir);
  const signingKey = await importPKCS8(await readFile(paths.signingKey, "utf8"), "ES256");
  const { keys } = JSON.parse(await readFile(paths.jwks, "utf8")) as { keys: { kid: string }[] };
  const issuedAt = options.issuedAt ?? Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: "ES256", kid: keys[0].kid, typ: "JWT" })
    .setSubject(spiffeId)
    .setAudience(options.audience ?? DEV_AUDIENCE)
    .setIssuer(DEV_ISSUER)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + (options.ttlSeconds ?? DEV_TOKEN_TTL_SECONDS))
    .sign(signingKey);
}

/** An X.509-SVID (URI SAN = `spiffeId`) from the dev CA for an agent's mTLS; reused while valid. */
export async function issueX509Svid(spiffeId: string, dir: string = defaultDevIdentityDir): Promise<X509SvidPaths> {
  requireSpiffeId(spiffeId);
  return issueInto(dir, svidFileName(spiffeId), { uri: spiffeId, serverAuth: true, clientAuth: true });
}

/**
 * A service's X.509-SVID that also names the DNS names and addresses its clients dial, for
 * clients that check the host name (Node, redis-cli) besides those that check the SPIFFE ID
 * (Envoy). Client and server use: the bridge serves the sidecars and is Valkey's client.
 * Written to svids/{name}.pem and svids/{name}-key.pem (fixed names a container can mount);
 * reused while valid, removed with the rest when the CA is regenerated.
 */
export async function issueServiceSvid(
  name: "bridge" | "valkey" | "vault",
  dir: string = defaultDevIdentityDir,
): Promise<X509SvidPaths> {
  const spec = {
    bridge: { uri: BRIDGE_SPIFFE_ID, dns: ["localhost", "bridge"] },
    valkey: { uri: VALKEY_SPIFFE_ID, dns: ["localhost", "valkey"] },
    vault: { uri: VAULT_SPIFFE_ID, dns: ["localhost", "vault"] },
  }[name];
  return issueInto(dir, name, { ...spec, ips: ["127.0.0.1"], serverAuth: true, clientAuth: true });
}

async function issueInto(dir: string, name: string, spec: LeafSpec): Promise<X509SvidPaths> {
  const paths = await ensureDevIdentity(dir);
  const svid = { cert: path.join(paths.dir, "svids", `${name}.pem`), key: path.join(paths.dir, "svids", `${name}-key.pem`) };
  if (await isFreshCertificate(svid.cert) && existsSync(svid.key)) return svid;
  await withLock(paths.dir, async () => {
    if (await isFreshCertificate(svid.cert) && existsSync(svid.key)) return;
    await mkdir(path.dirname(svid.cert), { recursive: true });
    const ca = await loadCa(paths);
    await writeLeaf(svid.cert, svid.key, await issueLeaf(ca, spec));
  });
  return svid;
}

function requireSpiffeId(spiffeId: string): void {
  if (!parseSpiffeId(spiffeId)) throw new Error(`not a valid SPIFFE ID: ${JSON.stringify(spiffeId)}`);
}

/** Readable and collision-free: the ID's path plus a short hash of the whole ID. */
function svidFileName(spiffeId: string): string {
  const { trustDomain, segments } = parseSpiffeId(spiffeId)!;
  const hash = createHash("sha256").update(spiffeId).digest("hex").slice(0, 10);
  return [trustDomain, ...segments].join("_") + "-" + hash;
}

// ---- generation --------------------------------------------------------------------------------

interface Manifest {
  version: number;
  notAfter: string;
}

interface KeyedCertificate {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

interface LeafSpec {
  uri?: string;
  dns?: string[];
  ips?: string[];
  serverAuth: boolean;
  clientAuth: boolean;
}

async function isUsable(dir: string): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(path.join(dir, "manifest.json"), "utf8")) as Manifest;
    return manifest.version === MANIFEST_VERSION && Date.parse(manifest.notAfter) - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

async function generateAll(paths: DevIdentityPaths): Promise<void> {
  await mkdir(paths.dir, { recursive: true });
  // Agent SVIDs from an earlier CA would no longer verify.
  await rm(path.join(paths.dir, "svids"), { recursive: true, force: true });
  await generateJwtSigningKey(paths);
  const ca = await generateCa();
  await writeLeaf(paths.ca, paths.caKey, ca);
  await writeLeaf(paths.injectorCert, paths.injectorKey, await issueLeaf(ca, {
    uri: INJECTOR_SPIFFE_ID, dns: ["localhost"], ips: ["127.0.0.1"], serverAuth: true, clientAuth: true,
  }));
  await writeLeaf(paths.sidecarCert, paths.sidecarKey, await issueLeaf(ca, {
    uri: DEFAULT_SIDECAR_SPIFFE_ID, serverAuth: false, clientAuth: true,
  }));
  await writeLeaf(paths.listenerCert, paths.listenerKey, await issueLeaf(ca, {
    dns: ["localhost"], ips: ["127.0.0.1"], serverAuth: true, clientAuth: false,
  }));
  // Written last: its presence means the set is complete.
  const manifest: Manifest = { version: MANIFEST_VERSION, notAfter: new Date(Date.now() + LEAF_LIFETIME_MS).toISOString() };
  await writeAtomically(path.join(paths.dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
}

async function generateJwtSigningKey(paths: DevIdentityPaths): Promise<void> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const publicJwk = await exportJWK(keys.publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const jwks = { keys: [{ ...publicJwk, kid, alg: "ES256", use: "sig" }] };
  await writeAtomically(paths.signingKey, await privateKeyPem(keys.privateKey), 0o600);
  await writeAtomically(paths.jwks, JSON.stringify(jwks, null, 2) + "\n");
}

async function generateCa(): Promise<KeyedCertificate> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=Hexr dev CA, O=Hexr dev (${DEV_TRUST_DOMAIN})`,
    keys,
    notBefore: backdated(),
    notAfter: new Date(Date.now() + CA_LIFETIME_MS),
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      // X.509-SVID spec: a signing certificate carries its trust domain's SPIFFE ID.
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${DEV_TRUST_DOMAIN}` }]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function issueLeaf(ca: KeyedCertificate, spec: LeafSpec): Promise<KeyedCertificate> {
  const keys = (await crypto.subtle.generateKey(EC_KEY, true, ["sign", "verify"])) as CryptoKeyPair;
  const names = [
    ...(spec.uri ? [{ type: "url" as const, value: spec.uri }] : []),
    ...(spec.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(spec.ips ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  const usages = [
    ...(spec.serverAuth ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(spec.clientAuth ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${spec.uri ? spec.uri.split("/").pop() : spec.dns?.[0]}, O=Hexr dev (${DEV_TRUST_DOMAIN})`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    notBefore: backdated(),
    notAfter: new Date(Date.now() + LEAF_LIFETIME_MS),
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(usages),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function loadCa(paths: DevIdentityPaths): Promise<KeyedCertificate> {
  const cert = new x509.X509Certificate(await readFile(paths.ca, "utf8"));
  const privateKey = await crypto.subtle.importKey("pkcs8", pemBody(await readFile(paths.caKey, "utf8")), EC_KEY, true, ["sign"]);
  const publicKey = await cert.publicKey.export(EC_KEY, ["verify"], crypto);
  return { cert, keys: { privateKey, publicKey } };
}

async function writeLeaf(certPath: string, keyPath: string, { cert, keys }: KeyedCertificate): Promise<void> {
  await writeAtomically(keyPath, await privateKeyPem(keys.privateKey), 0o600);
  await writeAtomically(certPath, cert.toString("pem") + "\n");
}

async function isFreshCertificate(certPath: string): Promise<boolean> {
  try {
    const cert = new x509.X509Certificate(await readFile(certPath, "utf8"));
    return cert.notAfter.getTime() - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

/** Tolerates a little clock skew between the processes that check the certificates. */
function backdated(): Date {
  return new Date(Date.now() - 5 * 60 * 1000);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await crypto.subtle.exportKey("pkcs8", key));
  const lines = der.toString("base64").match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PRIVATE KEY-----\n${lines}\n-----END PRIVATE KEY-----\n`;
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64"));
}

/** Readers never see a half-written file. */
async function writeAtomically(file: string, content: string, mode = 0o644): Promise<void> {
  const temporary = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(temporary, content, { mode });
  await rename(temporary, file);
}

// ---- cross-process lock (test workers and the stack may all start at once) ---------------------

const STALE_LOCK_MS = 30_000;

async function withLock<T>(dir: string, work: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true });
  const lock = path.join(dir, ".lock");
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      await removeIfStale(lock);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  try {
    return await work();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** A holder that crashed mid-generation must not block everyone forever. */
async function removeIfStale(lock: string): Promise<void> {
  try {
    if (Date.now() - (await stat(lock)).mtimeMs > STALE_LOCK_MS) await rm(lock, { recursive: true, force: true });
  } catch {
    // Released between the failed mkdir and stat: nothing to clean up.
  }
}
