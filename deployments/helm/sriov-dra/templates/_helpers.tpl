{{/* The prefix of every object: the release name, unless it lacks the chart's. */}}
{{- define "sriov-dra.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sriov-dra.serviceAccountName" -}}
{{- default (include "sriov-dra.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "sriov-dra.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sriov-dra.labels" -}}
{{ include "sriov-dra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The ConfigMap holding the classic config, or nothing. */}}
{{- define "sriov-dra.configMapName" -}}
{{- if .Values.classicConfig.existingConfigMap -}}
{{- .Values.classicConfig.existingConfigMap -}}
{{- else if or .Values.classicConfig.json .Values.classicConfig.content -}}
{{- include "sriov-dra.fullname" . }}-config
{{- end -}}
{{- end -}}

{{/* NetConfig's top-level fields as a CEL list, as api/netconfig/v1alpha1 declares them (a unit test there compares). */}}
{{- define "sriov-dra.netConfigFields" -}}
{{ list "apiVersion" "kind" "resourceName" "needVhostNet" "rdma" "additionalInfo" "driver" "network" "claimMaySet" | toJson }}
{{- end }}
