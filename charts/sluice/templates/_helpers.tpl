{{/*
Labels every object gets. app.kubernetes.io/part-of is what the kustomization stamps on all
objects; the rest are Helm's own (the chart comparison test ignores those).
*/}}
{{- define "sluice.labels" -}}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The controller pods' identity: selectors of the Deployment, Service, PDB, ServiceMonitor. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: sluice
app.kubernetes.io/component: controller
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "sluice.clusterwide" -}}
{{- if not .Values.watchNamespaces }}true{{ end -}}
{{- end -}}

{{/* Cluster-scoped names must not collide between namespace-scoped installs. */}}
{{- define "sluice.clusterName" -}}
{{- if include "sluice.clusterwide" . }}sluice-controller{{ else }}{{ printf "sluice-controller-%s" .Release.Namespace }}{{ end -}}
{{- end -}}

{{- define "sluice.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.peering.enabled) -}}
{{- fail "replicas > 1 needs peering.enabled: true (without peering every replica would work on the same Rollouts)" -}}
{{- end -}}
{{- range .Values.watchNamespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) -}}
{{- fail (printf "watchNamespaces: %q is not a namespace name (patterns are not supported: each namespace gets its own Role)" .) -}}
{{- end -}}
{{- end -}}
{{- range .Values.rbac.secretReaders -}}
{{- if not .namespace -}}
{{- fail "rbac.secretReaders: every entry needs a namespace" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The rules the controller needs wherever it serves Rollouts. Every rule is a call the code makes
or one of kopf's needs: tests/unit/deploy/test_rbac.py checks deploy/base/clusterrole.yaml
against the code, and test_helm_chart.py checks this chart renders the same rules. Reasons for
each rule: deploy/base/clusterrole.yaml.
*/}}
{{- define "sluice.namespacedRules" -}}
- apiGroups: [sluice.dev]
  resources: [rollouts]
  verbs: [get, list, watch, patch]
- apiGroups: [sluice.dev]
  resources: [rollouts/status]
  verbs: [patch]
- apiGroups: [sluice.dev]
  resources: [analysistemplates]
  verbs: [get]
- apiGroups: [sluice.dev]
  resources: [analysisruns]
  verbs: [create, get, list, watch, delete]
- apiGroups: [sluice.dev]
  resources: [analysisruns/status]
  verbs: [patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get, list, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, list, watch, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, patch]
- apiGroups: [split.smi-spec.io]
  resources: [trafficsplits]
  verbs: [get, list, watch, patch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
{{- end -}}

{{- define "sluice.clusterAnalysisTemplatesRule" -}}
- apiGroups: [sluice.dev]
  resources: [clusteranalysistemplates]
  verbs: [get]
{{- end -}}

{{- define "sluice.subject" -}}
- kind: ServiceAccount
  name: {{ .Values.serviceAccount.name }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
