{{/* Names and labels. */}}

{{- define "qod-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name prefix: the release name, plus the chart name unless it is in it. */}}
{{- define "qod-operator.fullname" -}}
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

{{- define "qod-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qod-operator.labels" -}}
helm.sh/chart: {{ include "qod-operator.chart" . }}
app.kubernetes.io/name: {{ include "qod-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qod-operator
{{- end }}

{{/* Selector labels of the operator pods. */}}
{{- define "qod-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qod-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Selector labels of the simulator pod. */}}
{{- define "qod-operator.simulatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "qod-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: simulator
{{- end }}

{{- define "qod-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qod-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false: name the ServiceAccount the operator runs as" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "qod-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Secrets, services and URLs. */}}

{{- define "qod-operator.providerSecretName" -}}
{{- default (printf "%s-provider" (include "qod-operator.fullname" .)) .Values.provider.existingSecret }}
{{- end }}

{{- define "qod-operator.hmacSecretName" -}}
{{- default (printf "%s-hmac" (include "qod-operator.fullname" .)) .Values.hmac.existingSecret }}
{{- end }}

{{- define "qod-operator.simulatorName" -}}
{{- printf "%s-simulator" (include "qod-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qod-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "qod-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "qod-operator.metricsServiceName" -}}
{{- printf "%s-metrics" (include "qod-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The QoD API base URL the operator calls. */}}
{{- define "qod-operator.providerUrl" -}}
{{- if .Values.simulator.enabled }}
{{- printf "http://%s:9091/quality-on-demand/v1" (include "qod-operator.simulatorName" .) }}
{{- else }}
{{- required "provider.url is required: the base URL of your provider's QoD API (e.g. https://api.example-telco.com/quality-on-demand/v1), or set simulator.enabled=true to try the operator without a telco account" .Values.provider.url }}
{{- end }}
{{- end }}

{{/* The URL the provider sends notifications to (without /notifications). */}}
{{- define "qod-operator.webhookPublicUrl" -}}
{{- if .Values.webhook.publicUrl }}
{{- .Values.webhook.publicUrl | trimSuffix "/" }}
{{- else if .Values.webhook.ingress.enabled }}
{{- printf "%s://%s" (ternary "https" "http" (gt (len .Values.webhook.ingress.tls) 0)) .Values.webhook.ingress.host }}
{{- else if .Values.simulator.enabled }}
{{- printf "http://%s.%s.svc:8443" (include "qod-operator.webhookServiceName" .) .Release.Namespace }}
{{- else }}
{{- required "webhook.publicUrl is required: the URL your QoD provider reaches the operator's webhook at (or set webhook.ingress.enabled=true with webhook.ingress.host)" .Values.webhook.publicUrl }}
{{- end }}
{{- end }}

{{/* The provider auth method in effect (the simulator needs none). */}}
{{- define "qod-operator.authMethod" -}}
{{- if .Values.simulator.enabled }}none{{ else }}{{ .Values.provider.auth.method }}{{ end }}
{{- end }}

{{/* The credential files mounted from the provider Secret, one per line as "key". */}}
{{- define "qod-operator.providerSecretKeys" -}}
{{- $method := include "qod-operator.authMethod" . }}
{{- if eq $method "oauth2" }}
client-secret
{{ else if eq $method "bearer" }}
bearer-token
{{ else if eq $method "apiKey" }}
api-key
{{ end }}
{{- if .Values.webhook.staticToken.enabled }}
webhook-static-token
{{ end }}
{{- end }}

{{/* Cross-field rules the schema cannot say clearly; each fails with what to change. */}}
{{- define "qod-operator.validate" -}}
{{- $_ := include "qod-operator.providerUrl" . }}
{{- $_ = include "qod-operator.webhookPublicUrl" . }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "leaderElection.enabled=false needs replicas: 1 (got %d): without a lease every replica would reconcile and create duplicate sessions" (int .Values.replicas)) }}
{{- end }}
{{- if not .Values.simulator.enabled }}
{{- $auth := .Values.provider.auth }}
{{- $own := not .Values.provider.existingSecret }}
{{- if eq $auth.method "oauth2" }}
{{- if or (not $auth.tokenUrl) (not $auth.clientId) }}
{{- fail "provider.auth.method=oauth2 needs provider.auth.tokenUrl and provider.auth.clientId" }}
{{- end }}
{{- if and $own (not $auth.clientSecret) }}
{{- fail "provider.auth.method=oauth2 needs provider.auth.clientSecret (or provider.existingSecret with key client-secret)" }}
{{- end }}
{{- else if and (eq $auth.method "bearer") $own (not $auth.bearerToken) }}
{{- fail "provider.auth.method=bearer needs provider.auth.bearerToken (or provider.existingSecret with key bearer-token)" }}
{{- else if and (eq $auth.method "apiKey") $own (not $auth.apiKey) }}
{{- fail "provider.auth.method=apiKey needs provider.auth.apiKey (or provider.existingSecret with key api-key)" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.staticToken.enabled (not .Values.provider.existingSecret) (not .Values.webhook.staticToken.value) }}
{{- fail "webhook.staticToken.enabled=true needs webhook.staticToken.value (or provider.existingSecret with key webhook-static-token)" }}
{{- end }}
{{- if and .Values.webhook.ingress.enabled (not .Values.webhook.ingress.host) }}
{{- fail "webhook.ingress.enabled=true needs webhook.ingress.host, the host name the provider calls" }}
{{- end }}
{{- end }}
