{{/* The objects' name, also the pods' app= label. */}}
{{- define "akv.name" -}}
{{- .Values.fullnameOverride | default "csi-secrets-store-provider-azure" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object: app= (the selector) and commonLabels. */}}
{{- define "akv.labels" -}}
app: {{ include "akv.name" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The image: repository, then @digest or :tag (default appVersion). */}}
{{- define "akv.image" -}}
{{- $img := .Values.linux.image -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The metrics port as a number ("8898" or ":8898"). */}}
{{- define "akv.metricsPort" -}}
{{- toString .Values.metricsAddr | trimPrefix ":" -}}
{{- end -}}
