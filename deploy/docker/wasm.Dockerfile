# syntax=docker/dockerfile:1
# A proxy-wasm filter as an OCI image Istio's WasmPlugin pulls (`url: oci://REGISTRY/hexr/exchange-filter:TAG`):
# one layer, one file, /plugin.wasm, FROM scratch (the "compat" variant of the Wasm image
# specification, which Istio and Envoy Gateway accept). Built from source here, release builds as
# `npm run build` makes them.
#   docker build -f deploy/docker/wasm.Dockerfile --build-arg FILTER=exchange -t REGISTRY/hexr/exchange-filter:0.1.0 .
#   docker build -f deploy/docker/wasm.Dockerfile --build-arg FILTER=llm      -t REGISTRY/hexr/llm-filter:0.1.0 .
# Base images are pinned by version tag here; pin them by digest (tag@sha256:...) at release.

FROM node:24.22.3-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json asconfig.json ./
COPY contract/ contract/
COPY assembly/ assembly/
COPY scripts/generate-contract.ts scripts/utf8-messages.mjs scripts/
# exchange: build/exchange_filter.wasm (assembly/index.ts); llm: build/llm_filter.wasm (assembly/llm.ts).
ARG FILTER=exchange
RUN case "${FILTER}" in \
      exchange) entry=assembly/index.ts ;; \
      llm) entry=assembly/llm.ts ;; \
      *) echo "FILTER must be exchange or llm, not '${FILTER}'" >&2; exit 1 ;; \
    esac \
 && npx tsx scripts/generate-contract.ts \
 && npx asc --transform ./scripts/utf8-messages.mjs "${entry}" --target release --outFile /plugin.wasm

FROM scratch
ARG FILTER=exchange
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="hexr-${FILTER}-filter" \
      org.opencontainers.image.description="Hexr proxy-wasm filter (${FILTER}) for Envoy: the module at /plugin.wasm" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Hexr"
COPY --from=build /plugin.wasm /plugin.wasm
# Never run: Envoy (istio-agent) extracts /plugin.wasm. USER and HEALTHCHECK NONE state that for the
# linters and scanners (a non-root user; no process to check).
USER 65532:65532
HEALTHCHECK NONE
