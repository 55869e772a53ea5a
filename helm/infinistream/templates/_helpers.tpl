{{- define "infinistream.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name of one component: <fullname>-<component>[-<zone>], a DNS label. */}}
{{- define "infinistream.componentName" -}}
{{- $name := printf "%s-%s" (include "infinistream.fullname" .root) .component -}}
{{- if .zone }}{{ $name = printf "%s-%s" $name .zone }}{{ end -}}
{{- $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "infinistream.labels" -}}
app.kubernetes.io/name: infinistream
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Pod selector of one Deployment: release, component and, for per-zone ones, zone. */}}
{{- define "infinistream.selectorLabels" -}}
app.kubernetes.io/name: infinistream
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .zone }}
infinistream.io/zone: {{ .zone }}
{{- end }}
{{- end -}}

{{- define "infinistream.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
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

{{/* The control plane agents register with: the chart's own, or controlPlane.url. */}}
{{- define "infinistream.controlPlaneUrl" -}}
{{- if and .Values.controlPlane.enabled .Values.controlPlane.url -}}
{{- fail "controlPlane.url is for a control plane installed elsewhere: set controlPlane.enabled=false to use it, or leave it empty" -}}
{{- else if .Values.controlPlane.enabled -}}
{{ ternary "https" "http" (.Values.internalTls.enabled | default false) }}://{{ include "infinistream.componentName" (dict "root" . "component" "control-plane") }}:7070
{{- else if .Values.controlPlane.url -}}
{{ .Values.controlPlane.url }}
{{- else -}}
{{- fail "agents need a control plane: set controlPlane.enabled=true (the chart's own) or controlPlane.url (one installed elsewhere)" -}}
{{- end -}}
{{- end -}}

{{/* Pod topology spread: across zones (unless the pods are pinned to one) and nodes. */}}
{{- define "infinistream.topologySpread" -}}
{{- $spread := .root.Values.topologySpread -}}
{{- if $spread.enabled }}
topologySpreadConstraints:
  {{- if not .pinned }}
  - maxSkew: {{ $spread.maxSkew }}
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels: {{- include "infinistream.selectorLabels" . | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
  {{- end }}
  - maxSkew: {{ $spread.maxSkew }}
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: {{ $spread.whenUnsatisfiable }}
    labelSelector:
      matchLabels: {{- include "infinistream.selectorLabels" . | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
{{- end }}
{{- end -}}

{{- define "infinistream.zoneAffinity" -}}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
        - matchExpressions:
            - key: topology.kubernetes.io/zone
              operator: In
              values: [{{ . | quote }}]
{{- end -}}

{{- define "infinistream.pdb" -}}
{{- if .root.Values.podDisruptionBudget.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "infinistream.componentName" . }}
  labels: {{- include "infinistream.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels: {{- include "infinistream.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The Secret holding a role's internal-link certificate (internalTls.secrets.<role>). */}}
{{- define "infinistream.tlsSecret" -}}
{{- $secret := index (.root.Values.internalTls.secrets | default dict) .component | default "" -}}
{{- if not $secret -}}
{{- fail (printf "internalTls.enabled needs internalTls.secrets.%s: the Secret (tls.crt, tls.key, ca.crt) of the %s certificate" .component .component) -}}
{{- end -}}
{{- $secret -}}
{{- end -}}

{{/* The read-only mount and the volume of a role's internal-link certificate. */}}
{{- define "infinistream.tlsMount" -}}
- { name: internal-tls, mountPath: /etc/infinistream/tls, readOnly: true }
{{- end -}}
{{- define "infinistream.tlsVolume" -}}
- name: internal-tls
  secret:
    secretName: {{ include "infinistream.tlsSecret" . }}
    defaultMode: 0440
{{- end -}}

{{/* The control plane's TLS settings (its listener, and forwarding to the leader). */}}
{{- define "infinistream.controlPlaneTlsEnv" -}}
- { name: INFINISTREAM_TLS_CERT, value: /etc/infinistream/tls/tls.crt }
- { name: INFINISTREAM_TLS_KEY, value: /etc/infinistream/tls/tls.key }
- { name: INFINISTREAM_TLS_CA, value: /etc/infinistream/tls/ca.crt }
- { name: INFINISTREAM_TLS_VERIFY, value: {{ .Values.internalTls.verifyClients | quote }} }
- { name: INFINISTREAM_TLS_SERVER_NAME, value: {{ include "infinistream.componentName" (dict "root" . "component" "control-plane") | quote }} }
{{- end -}}

{{/* An agent's TLS settings: to the control plane and on its peer port. */}}
{{- define "infinistream.agentTlsEnv" -}}
- { name: INFINISTREAM_CP_TLS_CA, value: /etc/infinistream/tls/ca.crt }
- { name: INFINISTREAM_CP_TLS_CERT, value: /etc/infinistream/tls/tls.crt }
- { name: INFINISTREAM_CP_TLS_KEY, value: /etc/infinistream/tls/tls.key }
- { name: INFINISTREAM_PEER_TLS_CERT, value: /etc/infinistream/tls/tls.crt }
- { name: INFINISTREAM_PEER_TLS_KEY, value: /etc/infinistream/tls/tls.key }
- { name: INFINISTREAM_PEER_TLS_CA, value: /etc/infinistream/tls/ca.crt }
- { name: INFINISTREAM_PEER_TLS_VERIFY, value: {{ .Values.internalTls.verifyClients | quote }} }
- { name: INFINISTREAM_PEER_TLS_SERVER_NAME, value: {{ .Values.internalTls.peerServerName | default (include "infinistream.componentName" (dict "root" . "component" "peer")) | quote }} }
{{- end -}}
