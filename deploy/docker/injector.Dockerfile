# syntax=docker/dockerfile:1
# The Credential Injector (injector/main.ts), compiled to JavaScript and run by plain Node.js on a
# distroless base: no shell, no package manager, no TypeScript transpiler, uid 65532.
# Build from the repository root:  docker build -f deploy/docker/injector.Dockerfile -t hexr/injector .
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
# None of the injector's runtime dependencies has an install script or a native part.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------------
FROM gcr.io/distroless/nodejs24-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="hexr-injector" \
      org.opencontainers.image.description="Hexr Credential Injector: exchanges a workload's SPIFFE identity for short-lived cloud credentials" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Hexr" \
      org.opencontainers.image.base.name="gcr.io/distroless/nodejs24-debian12:nonroot"
# Distroless keeps node at /nodejs/bin/node, outside its default PATH: put it on the PATH so that
# ENTRYPOINT (and a chart's `command`) can say `node`.
# HEXR_INJECTOR_CONFIG: the config file to mount (a ConfigMap); without one the injector exits 2.
# It also keeps the development fallback (injector/dev-config.ts, not in this image) out of reach.
ENV PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    NODE_ENV=production \
    HEXR_INJECTOR_CONFIG=/etc/hexr/injector/config.json \
    HEXR_HEALTHCHECK_PORT=8443
WORKDIR /app
# Everything under /app is root-owned and read-only to the service's user.
COPY --from=deps /app/node_modules /app/node_modules
COPY package.json /app/package.json
COPY --from=build /src/dist/contract /app/dist/contract
COPY --from=build /src/dist/service /app/dist/service
COPY --from=build /src/dist/spiffe /app/dist/spiffe
COPY --from=build /src/dist/injector /app/dist/injector
USER 65532:65532
# listen.port's default (TLS, client certificate required) and oidc.discovery_listen's (plain HTTP).
EXPOSE 8443 8444
# A TCP connect to the listener (the TLS listener wants a client certificate for anything more).
# Kubernetes ignores HEALTHCHECK: the chart's probes do this job there. Set HEXR_HEALTHCHECK_PORT
# when the config's listen.port is not 8443.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const s=require('node:net').connect(Number(process.env.HEXR_HEALTHCHECK_PORT),'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),3000).unref()"]
ENTRYPOINT ["node", "/app/dist/injector/main.js"]
