{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "slipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The objects' name: the release name, with the chart's name appended unless
the release name already contains it ("slipway" for release "slipway").
*/}}
{{- define "slipway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "slipway.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the pods: never change them in an upgrade. */}}
{{- define "slipway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slipway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "slipway.labels" -}}
{{ include "slipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret the pods read: the operator's, or the chart's. */}}
{{- define "slipway.secretName" -}}
{{- default (include "slipway.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{/*
The configuration file: values.config with auth.signing_key pointing at the
mounted key, so no replica ever generates a key of its own.
*/}}
{{- define "slipway.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $auth := get $cfg "auth" | default dict }}
{{- $_ := set $auth "signing_key" "/etc/slipway/keys/token.pem" }}
{{- $_ := set $cfg "auth" $auth }}
{{- toYaml $cfg }}
{{- end }}
