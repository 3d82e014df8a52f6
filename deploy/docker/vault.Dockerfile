# syntax=docker/dockerfile:1
# Hexr Vault (vault/main.ts), compiled to JavaScript and run by plain Node.js on a distroless base:
# no shell, no package manager, no TypeScript transpiler, uid 65532. The SQLite store needs
# better-sqlite3's native addon, compiled in the deps stage against this Node's headers and the same
# Debian 12 glibc the runtime base has.
# Build from the repository root:  docker build -f deploy/docker/vault.Dockerfile -t hexr/vault .
# Base images are pinned by version tag here; pin them by digest (tag@sha256:...) at release
# (deploy/docker/README.md, "Pinning").

# --- build: compile the services (tsconfig.build.json) to dist/ -------------------------------------
FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Type definitions and the compiler are devDependencies; no package's install script is needed to compile.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY contract/ contract/
COPY service/ service/
COPY spiffe/ spiffe/
COPY support/ support/
COPY injector/ injector/
COPY bridge/ bridge/
COPY vault/ vault/
RUN npm run build:services

# --- deps: the production dependencies, better-sqlite3 built from source ----------------------------
FROM node:24.22.3-bookworm-slim AS deps
# node-gyp's toolchain (Debian 12's versions, pinned); it stays in this stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 make=4.3-4.1 g++=4:12.2.0-3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# 1. Install with no package's install script run, then run only better-sqlite3's, from source
#    (npm_config_build_from_source: prebuild-install downloads no prebuilt binary from GitHub);
#    node-gyp compiles against the headers that ship with this Node in /usr/local (npm_config_nodedir:
#    no header tarball from nodejs.org), so the addon matches this Node's ABI, and Debian 12's glibc
#    as the runtime base has. Both are read from the environment by prebuild-install and node-gyp.
#    The smoke test after it fails the build if the addon does not load.
# 2. Create the data folder the runtime mounts a volume on (owned by the service's uid, mode 0700).
ENV npm_config_nodedir=/usr/local
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm_config_build_from_source=true npm rebuild better-sqlite3 \
 && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()" \
 && rm -rf node_modules/better-sqlite3/build/Release/obj node_modules/better-sqlite3/build/Release/obj.target \
           node_modules/better-sqlite3/build/Release/test_extension.node node_modules/better-sqlite3/build/Release/sqlite3.a \
           node_modules/better-sqlite3/deps \
 && npm cache clean --force \
 && mkdir -p /out/data && chmod 0700 /out/data

# --- runtime ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="hexr-vault" \
      org.opencontainers.image.description="Hexr Vault: tenant-scoped secrets for agents, envelope-encrypted, with an audit chain" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Hexr" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
# Distroless keeps node at /nodejs/bin/node, outside its default PATH: put it on the PATH so that
# ENTRYPOINT (and a chart's `command`) can say `node`.
# HEXR_VAULT_CONFIG: the config file to mount (a ConfigMap); without one the vault exits 2.
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_ENV=production \
    HEXR_VAULT_CONFIG=/etc/hexr/vault/config.json \
    HEXR_HEALTHCHECK_PORT=8445
WORKDIR /app
# Everything under /app is root-owned and read-only to the service's user.
COPY --from=deps /app/node_modules /app/node_modules
COPY package.json /app/package.json
COPY --from=build /src/dist/contract /app/dist/contract
COPY --from=build /src/dist/service /app/dist/service
COPY --from=build /src/dist/spiffe /app/dist/spiffe
COPY --from=build /src/dist/bridge/cipher.js /src/dist/bridge/keyfile.js /app/dist/bridge/
COPY --from=build /src/dist/vault /app/dist/vault
# The one folder the vault writes: point store.path into it (e.g. /var/lib/hexr/vault/vault.db; the
# SQLite database and its -wal and -shm files) and mount a volume on it, as the root file system is
# meant to be read-only. With PostgreSQL and a KMS KEK the vault writes nothing.
COPY --from=deps --chown=65532:65532 /out/data /var/lib/hexr/vault
VOLUME ["/var/lib/hexr/vault"]
USER 65532:65532
# listen.port's default (TLS, client certificate required).
EXPOSE 8445
# A TCP connect to the listener: the vault has no /healthz (every answered request is audited).
# Kubernetes ignores HEALTHCHECK: the chart's probes (tcpSocket) do this job there. Set
# HEXR_HEALTHCHECK_PORT when the config's listen.port is not 8445.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const s=require('node:net').connect(Number(process.env.HEXR_HEALTHCHECK_PORT),'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),3000).unref()"]
ENTRYPOINT ["node", "/app/dist/vault/main.js"]
