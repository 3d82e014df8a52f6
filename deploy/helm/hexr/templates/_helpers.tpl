{{/* Names and labels. */}}
{{- define "hexr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hexr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "hexr.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hexr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: hexr
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "injector") */}}
{{- define "hexr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hexr.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hexr.componentLabels" -}}
{{ include "hexr.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image reference: (dict "root" $ "image" .Values.images.injector) — tag defaults to appVersion. */}}
{{- define "hexr.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion -}}
{{- if eq (toString $tag) "latest" -}}{{- fail "images: the tag `latest` is not allowed; pin a version" -}}{{- end -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}

{{- define "hexr.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "hexr.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}

{{- define "hexr.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Component names. */}}
{{- define "hexr.injector.name" -}}{{ include "hexr.fullname" . }}-injector{{- end -}}
{{- define "hexr.bridge.name" -}}{{ include "hexr.fullname" . }}-bridge{{- end -}}
{{- define "hexr.vault.name" -}}{{ include "hexr.fullname" . }}-vault{{- end -}}
{{- define "hexr.opa.name" -}}{{ include "hexr.fullname" . }}-opa{{- end -}}
{{- define "hexr.valkey.name" -}}{{ include "hexr.fullname" . }}-valkey{{- end -}}
{{- define "hexr.valkey.headless" -}}{{ include "hexr.fullname" . }}-valkey-headless{{- end -}}

{{- define "hexr.injector.host" -}}{{ include "hexr.injector.name" . }}.{{ .Release.Namespace }}.svc.cluster.local{{- end -}}
{{- define "hexr.bridge.host" -}}{{ include "hexr.bridge.name" . }}.{{ .Release.Namespace }}.svc.cluster.local{{- end -}}
{{- define "hexr.vault.host" -}}{{ include "hexr.vault.name" . }}.{{ .Release.Namespace }}.svc.cluster.local{{- end -}}
{{- define "hexr.opa.host" -}}{{ include "hexr.opa.name" . }}.{{ .Release.Namespace }}.svc.cluster.local{{- end -}}

{{/* SPIFFE IDs of the services. */}}
{{- define "hexr.injector.spiffeId" -}}{{ .Values.spire.ids.injector | default (printf "spiffe://%s/hexr-system/credential-injector" .Values.spire.trustDomain) }}{{- end -}}
{{- define "hexr.bridge.spiffeId" -}}{{ .Values.spire.ids.bridge | default (printf "spiffe://%s/hexr-system/bridge" .Values.spire.trustDomain) }}{{- end -}}
{{- define "hexr.vault.spiffeId" -}}{{ .Values.spire.ids.vault | default (printf "spiffe://%s/hexr-system/vault" .Values.spire.trustDomain) }}{{- end -}}

{{/* SPIRE. */}}
{{- define "hexr.spire.agentSocket" -}}{{ .Values.spire.workloadApi.mountPath }}/{{ .Values.spire.workloadApi.socketName }}{{- end -}}
{{- define "hexr.spire.jwksUri" -}}{{ .Values.spire.oidcDiscovery.jwksUri }}{{- end -}}
{{- define "hexr.spire.jwksHost" -}}{{ (urlParse .Values.spire.oidcDiscovery.jwksUri).host | splitList ":" | first }}{{- end -}}
{{- define "hexr.spire.jwksPort" -}}
{{- $parts := (urlParse .Values.spire.oidcDiscovery.jwksUri).host | splitList ":" -}}
{{- if lt (len $parts) 2 -}}{{- fail "spire.oidcDiscovery.jwksUri must name its port: http://HOST:PORT/keys" -}}{{- end -}}
{{- last $parts -}}
{{- end -}}
{{- define "hexr.jwt.issuer" -}}{{ .Values.spire.oidcDiscovery.issuer }}{{- end -}}

{{/* The Workload API volume (CSI driver or hostPath) and its mount. */}}
{{- define "hexr.spire.volume" -}}
- name: spiffe-workload-api
{{- if eq .Values.spire.workloadApi.mode "csi" }}
  csi:
    driver: {{ .Values.spire.workloadApi.csiDriver }}
    readOnly: true
{{- else }}
  hostPath:
    path: {{ .Values.spire.workloadApi.hostPath }}
    type: Directory
{{- end }}
{{- end -}}

{{/*
The spiffe-helper containers of a service: one init container (-daemon-mode=false: the files exist
before the service starts) and one sidecar that keeps them fresh. (dict "root" $ "name" "injector")
*/}}
{{- define "hexr.spiffeHelper.initContainer" -}}
- name: svid-init
  image: {{ include "hexr.image" (dict "root" .root "image" .root.Values.images.spiffeHelper) }}
  imagePullPolicy: {{ .root.Values.images.spiffeHelper.pullPolicy }}
  args: ["-config", "/etc/spiffe-helper/helper.conf", "-daemon-mode=false"]
  securityContext: {{- include "hexr.containerSecurityContext" .root | nindent 4 }}
  resources: {{- toYaml (dict "requests" (dict "cpu" "10m" "memory" "16Mi") "limits" (dict "cpu" "100m" "memory" "64Mi")) | nindent 4 }}
  volumeMounts:
  - { name: spiffe-workload-api, mountPath: {{ .root.Values.spire.workloadApi.mountPath }}, readOnly: true }
  - { name: svid, mountPath: /run/hexr/svid }
  - { name: spiffe-helper-config, mountPath: /etc/spiffe-helper, readOnly: true }
{{- end -}}
{{- define "hexr.spiffeHelper.container" -}}
{{- $hc := .root.Values.spiffeHelper.healthChecks }}
- name: svid
  image: {{ include "hexr.image" (dict "root" .root "image" .root.Values.images.spiffeHelper) }}
  imagePullPolicy: {{ .root.Values.images.spiffeHelper.pullPolicy }}
  args: ["-config", "/etc/spiffe-helper/helper.conf"]
  securityContext: {{- include "hexr.containerSecurityContext" .root | nindent 4 }}
  {{- if $hc.enabled }}
  # spiffe-helper's health listener (health_checks in helper.conf, daemon mode only): ready once the
  # SVID files are written, not live when writing them failed. The NetworkPolicies open this port to
  # no one: only the kubelet probes it.
  ports:
  - { name: svid-health, containerPort: {{ $hc.port }} }
  livenessProbe:
    httpGet: { path: {{ $hc.livenessPath }}, port: svid-health }
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    httpGet: { path: {{ $hc.readinessPath }}, port: svid-health }
    periodSeconds: 5
    timeoutSeconds: 2
    failureThreshold: 3
  {{- end }}
  resources: {{- toYaml (dict "requests" (dict "cpu" "10m" "memory" "16Mi") "limits" (dict "cpu" "100m" "memory" "64Mi")) | nindent 4 }}
  volumeMounts:
  - { name: spiffe-workload-api, mountPath: {{ .root.Values.spire.workloadApi.mountPath }}, readOnly: true }
  - { name: svid, mountPath: /run/hexr/svid }
  - { name: spiffe-helper-config, mountPath: /etc/spiffe-helper, readOnly: true }
{{- end -}}

{{/* spiffe-helper's health_checks block for helper.conf (HCL; spiffe-helper >= 0.9, pinned 0.10.0:
cmd/spiffe-helper/config, pkg/health). The listener runs in daemon mode only, so the init container
(-daemon-mode=false) sharing this file opens nothing. */}}
{{- define "hexr.spiffeHelper.healthChecks" -}}
{{- $hc := .Values.spiffeHelper.healthChecks -}}
{{- if $hc.enabled -}}
health_checks {
  listener_enabled = true
  bind_port = {{ $hc.port }}
  liveness_path = {{ $hc.livenessPath | quote }}
  readiness_path = {{ $hc.readinessPath | quote }}
}
{{- end -}}
{{- end -}}

{{/* Tenants granted in opa.tenants, sorted. */}}
{{- define "hexr.tenants" -}}
{{- keys .Values.opa.tenants | sortAlpha | toJson -}}
{{- end -}}

{{/* Sidecar caller rules for the bridge and the vault: one per tenant. */}}
{{- define "hexr.sidecarCallerRules" -}}
{{- $rules := list -}}
{{- range $tenant := (include "hexr.tenants" . | fromJsonArray) -}}
{{- $rules = append $rules (dict "spiffe_id" (printf "spiffe://%s/%s/%s/*" $.Values.spire.trustDomain $.Values.sidecar.spiffeIdPrefix $tenant) "tenants" (list $tenant)) -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{/* ------------------------------------------------------------------------------------------
The sidecar's filter configuration (docs/filter-contract.md), from sidecar.filter with the derived
values: trust domains, issuers, audiences, the allow-list from opa.tenants, and the cluster names of
the mode (Istio's outbound clusters, or the plain-Envoy bootstrap's hexr_injector/hexr_bridge).
------------------------------------------------------------------------------------------- */}}
{{- define "hexr.sidecar.injectorCluster" -}}
{{- if .Values.sidecar.istio.enabled -}}
outbound|{{ .Values.credentialInjector.service.port }}||{{ include "hexr.injector.name" . }}.{{ .Release.Namespace }}.svc.{{ .Values.sidecar.istio.clusterDomain }}
{{- else -}}
hexr_injector
{{- end -}}
{{- end -}}
{{- define "hexr.sidecar.l2Cluster" -}}
{{- if .Values.sidecar.istio.enabled -}}
outbound|{{ .Values.bridge.service.port }}||{{ include "hexr.bridge.name" . }}.{{ .Release.Namespace }}.svc.{{ .Values.sidecar.istio.clusterDomain }}
{{- else -}}
hexr_bridge
{{- end -}}
{{- end -}}

{{- define "hexr.sidecar.resources" -}}
{{- if .Values.sidecar.filter.resources -}}
{{- toJson .Values.sidecar.filter.resources -}}
{{- else -}}
{{- $out := dict -}}
{{- range $tenant, $t := .Values.opa.tenants -}}
{{- range $agent, $a := ($t.agents | default dict) -}}
{{- range $role, $grants := ($a.roles | default dict) -}}
{{- $key := ternary (printf "%s/%s" $tenant $agent) (printf "%s/%s/%s" $tenant $agent $role) (eq $role "*") -}}
{{- $_ := set $out $key $grants -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}
{{- end -}}

{{- define "hexr.sidecar.filterConfig" -}}
{{- $f := .Values.sidecar.filter -}}
{{- $c := dict
  "exchange_path" $f.exchange_path
  "max_body_bytes" $f.max_body_bytes
  "identity_sources" $f.identity_sources
  "trust_domains" ($f.trust_domains | default (list .Values.spire.trustDomain))
  "jwt_issuers" ($f.jwt_issuers | default (list .Values.spire.oidcDiscovery.issuer))
  "jwt_audiences" ($f.jwt_audiences | default (list .Values.spire.jwt.audience))
  "resources" (include "hexr.sidecar.resources" . | fromJson)
  "refresh_buffer_seconds" $f.refresh_buffer_seconds
  "refresh_ahead_percent" $f.refresh_ahead_percent
  "eviction_interval_seconds" $f.eviction_interval_seconds
  "coalesce_poll_ms" $f.coalesce_poll_ms
  "metrics_flush_ms" $f.metrics_flush_ms
  "max_keys_per_identity" $f.max_keys_per_identity
  "max_keys" $f.max_keys
  "injector" (dict "cluster" (include "hexr.sidecar.injectorCluster" .) "authority" (include "hexr.injector.host" .) "path" "/exchange" "timeout_ms" $f.injector_timeout_ms)
  "l2" (dict "cluster" (include "hexr.sidecar.l2Cluster" .) "authority" (include "hexr.bridge.host" .) "timeout_ms" $f.l2_timeout_ms)
  "vault" (and $f.vault .Values.vault.enabled)
-}}
{{- if .Values.sidecar.istio.enabled -}}
{{- /* Istio's RequestAuthentication writes the verified payload to jwt_authn's metadata under "payload". */ -}}
{{- $_ := set $c "jwt_metadata_namespace" "envoy.filters.http.jwt_authn" -}}
{{- $_ := set $c "jwt_payload_key" "payload" -}}
{{- end -}}
{{- with $f.default_regions }}{{ $_ := set $c "default_regions" . }}{{ end -}}
{{- with $f.regions }}{{ $_ := set $c "regions" . }}{{ end -}}
{{- with $f.extra_services }}{{ $_ := set $c "extra_services" . }}{{ end -}}
{{- with $f.static_spiffe_id }}{{ $_ := set $c "static_spiffe_id" . }}{{ end -}}
{{- if $f.aws_container }}{{ $_ := set $c "aws_container" $f.aws_container }}{{ end -}}
{{- with $f.gce_metadata }}{{ $_ := set $c "gce_metadata" . }}{{ end -}}
{{- with $f.azure_managed_identity }}{{ $_ := set $c "azure_managed_identity" . }}{{ end -}}
{{- if $f.revocation }}{{ $_ := set $c "revocation" $f.revocation }}{{ end -}}
{{- if $f.llm -}}
{{- $llm := dict -}}
{{- range $k, $v := $f.llm -}}
{{- if not (and (kindIs "slice" $v) (empty $v)) }}{{ $_ := set $llm $k $v }}{{ end -}}
{{- end -}}
{{- $_ := set $c "llm" $llm -}}
{{- end -}}
{{- toJson $c -}}
{{- end -}}

{{- define "hexr.sidecar.filterConfigJson" -}}{{ include "hexr.sidecar.filterConfig" . }}{{- end -}}

{{- define "hexr.sidecar.exchangePath" -}}{{ .Values.sidecar.filter.exchange_path }}{{- end -}}
{{- define "hexr.sidecar.awsCredentialsPath" -}}
{{- if .Values.sidecar.filter.aws_container -}}{{ .Values.sidecar.filter.aws_container.path | default "/v1/aws/credentials" }}{{- else -}}{{ .Values.sidecar.filter.exchange_path }}{{- end -}}
{{- end -}}
{{- define "hexr.sidecar.revocationPath" -}}
{{- if .Values.sidecar.filter.revocation -}}{{ .Values.sidecar.filter.revocation.path | default "/revoke" }}{{- else -}}{{ .Values.sidecar.filter.exchange_path }}{{- end -}}
{{- end -}}
{{- define "hexr.sidecar.trapPath" -}}{{ .Values.sidecar.filter.exchange_path }}{{- end -}}
{{- define "hexr.sidecar.vaultDoor" -}}{{ and .Values.sidecar.filter.vault .Values.vault.enabled | toString }}{{- end -}}
{{- define "hexr.sidecar.llmRoute" -}}{{ not (empty .Values.sidecar.filter.llm) | toString }}{{- end -}}
{{- define "hexr.sidecar.llmMaxRequestBytes" -}}{{ .Values.sidecar.filter.llm.max_request_bytes | default 1048576 | int }}{{- end -}}

{{/* Each LLM provider's upstream: name → {host, port, authority, path}; https only. */}}
{{- define "hexr.sidecar.llmUpstreams" -}}
{{- $out := dict -}}
{{- range $name, $_ := .Values.sidecar.filter.llm.providers -}}
{{- $url := index $.Values.sidecar.llm.upstreams $name | default "" -}}
{{- if not $url -}}{{- fail (printf "sidecar.llm.upstreams.%s: the LLM filter serves %s but no https:// base URL is set for it" $name $name) -}}{{- end -}}
{{- $u := urlParse $url -}}
{{- if ne $u.scheme "https" -}}{{- fail (printf "sidecar.llm.upstreams.%s must be an https:// URL" $name) -}}{{- end -}}
{{- $hp := splitList ":" $u.host -}}
{{- $port := ternary (last $hp) "443" (gt (len $hp) 1) -}}
{{- $path := printf "%s/" (trimSuffix "/" $u.path) -}}
{{- $_ := set $out $name (dict "host" (first $hp) "port" $port "authority" $u.host "path" $path) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The sidecar-carrying pods as NetworkPolicy peers (in the release namespace or the listed ones). */}}
{{- define "hexr.sidecarPeers" -}}
{{- if .Values.sidecar.namespaces }}
{{- range .Values.sidecar.namespaces }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ . }}
  podSelector:
    matchLabels: {{- toYaml $.Values.sidecar.podSelector | nindent 6 }}
{{- end }}
{{- else }}
- podSelector:
    matchLabels: {{- toYaml .Values.sidecar.podSelector | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "hexr.monitoringPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.monitoring.namespace }}
{{- end -}}

{{/* A Secret value kept across upgrades: (dict "root" $ "secret" NAME "key" KEY "default" VALUE) */}}
{{- define "hexr.keep" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if and $existing (index ($existing.data | default dict) .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- .default | b64enc -}}
{{- end -}}
{{- end -}}

{{/*
Copies Secret files into a memory emptyDir as 0600 files owned by the pod's user: the services
refuse key files that group or others may read, and Kubernetes mounts Secrets as root:fsGroup.
Uses the Valkey image (already pulled for the release; it has a shell). Rotating such a Secret
needs a rollout. (dict "root" $ "volumes" (list "opa-token" ...)) — each /secrets-in/NAME → /run/hexr/secrets/NAME/
*/}}
{{- define "hexr.secretCopy.initContainer" -}}
- name: secret-files
  image: {{ include "hexr.image" (dict "root" .root "image" .root.Values.images.valkey) }}
  imagePullPolicy: {{ .root.Values.images.valkey.pullPolicy }}
  command: ["/bin/sh", "-ec"]
  args:
  - |
    umask 077
    for dir in /secrets-in/*; do
      name=$(basename "$dir"); mkdir -p "/run/hexr/secrets/$name"
      for f in "$dir"/*; do install -m 0600 "$f" "/run/hexr/secrets/$name/$(basename "$f")"; done
    done
  securityContext: {{- include "hexr.containerSecurityContext" .root | nindent 4 }}
  resources: {{- toYaml (dict "requests" (dict "cpu" "10m" "memory" "16Mi") "limits" (dict "cpu" "100m" "memory" "32Mi")) | nindent 4 }}
  volumeMounts:
  - { name: secret-files, mountPath: /run/hexr/secrets }
{{- range .volumes }}
  - { name: {{ . }}, mountPath: /secrets-in/{{ . }}, readOnly: true }
{{- end }}
{{- end -}}

{{/* ------------------------------------------------------------------------------------------
Istio mode helpers.
------------------------------------------------------------------------------------------- */}}
{{/* The namespaces agent pods run in (sidecar.namespaces, else the release's), as JSON: objects that
select workloads (EnvoyFilter, the bootstrap ConfigMap a pod mounts) act only in their own namespace. */}}
{{- define "hexr.istio.agentNamespaces" -}}
{{- toJson (.Values.sidecar.namespaces | default (list .Release.Namespace)) -}}
{{- end -}}

{{/* The sidecar Service's host, as VirtualServices and Istio's virtual hosts name it. */}}
{{- define "hexr.istio.sidecarHost" -}}{{ include "hexr.fullname" . }}-sidecar.{{ .Release.Namespace }}.svc.{{ .Values.sidecar.istio.clusterDomain }}{{- end -}}

{{/* The plain-Envoy sidecar's stats_config (stats_tags), taken from files/sidecar.yaml.tpl (generated
from envoy/sidecar.yaml), as JSON {"stats_config": {...}}: one source for both modes. */}}
{{- define "hexr.istio.statsConfig" -}}
{{- $block := regexFind "(?m)^stats_config:(\n[ ]+.*)+" (.Files.Get "files/sidecar.yaml.tpl") -}}
{{- $parsed := fromYaml $block -}}
{{- if or (not $block) (not $parsed.stats_config) (not $parsed.stats_config.stats_tags) -}}
{{- fail "files/sidecar.yaml.tpl has no stats_config.stats_tags block" -}}
{{- end -}}
{{- toJson (dict "stats_config" (dict "stats_tags" $parsed.stats_config.stats_tags)) -}}
{{- end -}}

{{/* The pod annotations an agent needs under Istio for the filters' stats (see deploy/README.md):
the bootstrap override (stats_tags) and the proxy's stats inclusion (istio-proxy drops wasmcustom.*
stats by default). As JSON {annotation: value}. */}}
{{- define "hexr.istio.podAnnotations" -}}
{{- $proxy := dict "proxyStatsMatcher" (dict "inclusionPrefixes" (list "wasmcustom.hexr_")) -}}
{{- toJson (dict "sidecar.istio.io/bootstrapOverride" (printf "%s-istio-bootstrap" (include "hexr.fullname" .)) "proxy.istio.io/config" (toJson $proxy)) -}}
{{- end -}}
