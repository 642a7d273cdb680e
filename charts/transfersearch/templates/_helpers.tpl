{{/* Names, labels and images shared by the templates. */}}

{{- define "transfersearch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the prefix of every object the chart creates. */}}
{{- define "transfersearch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "transfersearch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; the component label is added per object. */}}
{{- define "transfersearch.labels" -}}
helm.sh/chart: {{ include "transfersearch.chart" . }}
app.kubernetes.io/name: {{ include "transfersearch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: transfersearch
{{- end }}

{{/*
The operator pod's selector. The component keeps it apart from the trainer pods,
which the operator labels app.kubernetes.io/name=transfersearch too.
*/}}
{{- define "transfersearch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "transfersearch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "transfersearch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "transfersearch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository@digest when a digest is given, else repository:tag (default appVersion). */}}
{{- define "transfersearch.image" -}}
{{- $image := index . 0 }}
{{- $root := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces served in "namespaces" scope, as a JSON list (default: the release's). */}}
{{- define "transfersearch.watchNamespaces" -}}
{{- if .Values.watch.namespaces }}
{{- .Values.watch.namespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* The namespaces whose trainer pods get a NetworkPolicy, as a JSON list. */}}
{{- define "transfersearch.trainerNamespaces" -}}
{{- if include "transfersearch.clusterScope" . }}
{{- .Values.networkPolicy.trainerNamespaces | uniq | toJson }}
{{- else }}
{{- include "transfersearch.watchNamespaces" . }}
{{- end }}
{{- end }}

{{/*
The trainers' S3 ports, as a JSON list: networkPolicy.s3.ports and the port of every
endpoint a search may use (trainer.s3.endpoint, policy.allowedS3Endpoints).
*/}}
{{- define "transfersearch.s3Ports" -}}
{{- $ports := list }}
{{- range .Values.networkPolicy.s3.ports }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- $endpoints := .Values.policy.allowedS3Endpoints }}
{{- with .Values.trainer.s3.endpoint }}
{{- $endpoints = append $endpoints . }}
{{- end }}
{{- range $endpoints }}
{{- if ne . "*" }}
{{- $url := urlParse . }}
{{- $hostPort := splitList ":" (get $url "host") }}
{{- if eq (len $hostPort) 2 }}
{{- $ports = append $ports (atoi (last $hostPort)) }}
{{- else if eq (get $url "scheme") "http" }}
{{- $ports = append $ports 80 }}
{{- else }}
{{- $ports = append $ports 443 }}
{{- end }}
{{- end }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}

{{- define "transfersearch.clusterScope" -}}
{{- if eq .Values.watch.scope "cluster" }}true{{ end }}
{{- end }}

{{/*
What the operator calls, and nothing more: the table "RBAC (least privilege)" in
docs/operator.md. A test renders these rules and compares them with that table.
*/}}
{{- define "transfersearch.rules" -}}
- apiGroups: ["transfersearch.io"]
  resources: ["transfersearches"]
  verbs: ["list", "watch"]
- apiGroups: ["transfersearch.io"]
  resources: ["transfersearches/status"]
  verbs: ["patch"]
- apiGroups: ["transfersearch.io"]
  resources: ["transfersearches/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "get", "create", "delete"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
