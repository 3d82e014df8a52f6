# syntax=docker/dockerfile:1
# The Valkey HTTP bridge (bridge/main.ts), compiled to JavaScript and run by plain Node.js on a
# distroless base: no shell, no package manager, no TypeScript transpiler, uid 65532.
# Build from the repository root:  docker build -f deploy/docker/bridge.Dockerfile -t hexr/bridge .
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

# --- deps: the production dependencies only --------------------------------------------------------
FROM node:24.22.3-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# None of the bridge's runtime dependencies has an install script or a native part.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="hexr-bridge" \
      org.opencontainers.image.description="Hexr Valkey bridge: the encrypted L2 credential cache and revocation log over mTLS HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Hexr" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
# Distroless keeps node at /nodejs/bin/node, outside its default PATH: put it on the PATH so that
# ENTRYPOINT (and a chart's `command`) can say `node`.
# The bridge takes flags or HEXR_BRIDGE_* variables (bridge/README.md); in a container it listens on
# every address of its network namespace (TLS, client certificates checked against the trust bundle).
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_ENV=production \
    HEXR_BRIDGE_HOST=0.0.0.0 \
    HEXR_BRIDGE_PORT=15090 \
    HEXR_HEALTHCHECK_PORT=15090
WORKDIR /app
# Everything under /app is root-owned and read-only to the service's user.
COPY --from=deps /app/node_modules /app/node_modules
COPY package.json /app/package.json
COPY --from=build /src/dist/contract /app/dist/contract
COPY --from=build /src/dist/service /app/dist/service
COPY --from=build /src/dist/spiffe /app/dist/spiffe
COPY --from=build /src/dist/bridge /app/dist/bridge
USER 65532:65532
# --port's default (TLS; /healthz answers without a client certificate).
EXPOSE 15090
# A TCP connect to the listener. Kubernetes ignores HEALTHCHECK: the chart's probes do this job
# there (GET /healthz over TLS, which also checks Valkey). Set HEXR_HEALTHCHECK_PORT with --port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const s=require('node:net').connect(Number(process.env.HEXR_HEALTHCHECK_PORT),'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),3000).unref()"]
ENTRYPOINT ["node", "/app/dist/bridge/main.js"]
