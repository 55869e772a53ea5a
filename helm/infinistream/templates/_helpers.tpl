{{- define "infinistream.fullname" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "infinistream.labels" -}}
app.kubernetes.io/name: infinistream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "infinistream.secretName" -}}
{{- if .Values.group.existingSecret -}}{{ .Values.group.existingSecret }}{{- else -}}{{ include "infinistream.fullname" . }}-group{{- end -}}
{{- end -}}

{{- define "infinistream.groupEnv" -}}
- name: INFINISTREAM_GROUP_ID
  value: {{ .Values.group.id | quote }}
- name: INFINISTREAM_GROUP_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "infinistream.secretName" . }}
      key: group-key
{{- end -}}
