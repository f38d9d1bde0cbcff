{{/* Names and labels. */}}
{{- define "latechforce.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "latechforce.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of a component's objects: <fullname>-<component>. */}}
{{- define "latechforce.componentName" -}}
{{- printf "%s-%s" (include "latechforce.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "latechforce.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "latechforce.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: latechforce
{{- end -}}

{{- define "latechforce.selectorLabels" -}}
app.kubernetes.io/name: {{ include "latechforce.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of a component's objects; `dict "root" $ "component" "api"`. */}}
{{- define "latechforce.componentLabels" -}}
{{ include "latechforce.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "latechforce.componentSelectorLabels" -}}
{{ include "latechforce.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "latechforce.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "latechforce.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "latechforce.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the credentials: yours, or the one the chart creates. */}}
{{- define "latechforce.secretName" -}}
{{- default (include "latechforce.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/* An environment variable from the credentials Secret:
     dict "root" $ "env" "DATABASE_URL" "key" "databaseUrl" "optional" false */}}
{{- define "latechforce.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "latechforce.secretName" .root }}
      key: {{ index .root.Values.secrets.keys .key }}
      optional: {{ .optional }}
{{- end -}}

{{/* name: value pairs of a map as an env list, sorted by name. */}}
{{- define "latechforce.envMap" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* The worker's values: workerDefaults overridden by workers.<name>. */}}
{{- define "latechforce.workerValues" -}}
{{- $w := index .root.Values.workers .name -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.workerDefaults) (deepCopy $w)) -}}
{{- end -}}

{{/* Pod annotations that roll the pods when their configuration changes. */}}
{{- define "latechforce.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end -}}

{{/* The affinity of a component: its own, else the podAntiAffinity preset. */}}
{{- define "latechforce.affinity" -}}
{{- if .affinity -}}
{{ toYaml .affinity }}
{{- else if eq .root.Values.podAntiAffinity "soft" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "latechforce.componentSelectorLabels" . | nindent 12 }}
{{- else if eq .root.Values.podAntiAffinity "hard" -}}
podAntiAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "latechforce.componentSelectorLabels" . | nindent 10 }}
{{- end -}}
{{- end -}}

{{/* The pod spec every component shares. Arguments (a dict):
     root, component, c (the component's values), args (the container's arguments),
     port, portName, env (extra env, YAML list text), grace (seconds), probes (bool),
     volumes/volumeMounts (YAML list text, optional), preStopSleep (seconds, optional). */}}
{{- define "latechforce.podTemplate" -}}
{{- $root := .root -}}
{{- $kafka := fromYaml (include "latechforce.kafkaOf" (dict "root" $root "c" .c)) -}}
metadata:
  labels:
    {{- include "latechforce.componentLabels" . | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- include "latechforce.configChecksums" $root | nindent 4 }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "latechforce.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .grace }}
  containers:
    - name: {{ .component }}
      image: {{ include "latechforce.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      {{- if .port }}
      ports:
        - name: {{ .portName }}
          containerPort: {{ .port }}
          protocol: TCP
      {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "latechforce.fullname" $root }}
        {{- with .c.extraEnvFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- $kafkaEnv := include "latechforce.kafkaEnv" (dict "k" $kafka "component" .component) }}
      {{- $env := trim (printf "%s\n%s\n%s" (.env | default "") $kafkaEnv (include "latechforce.envMap" .c.extraEnv)) }}
      {{- with $env }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      {{- if .probes }}
      startupProbe:
        httpGet:
          path: /healthz
          port: {{ .portName }}
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        httpGet:
          path: /healthz
          port: {{ .portName }}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      readinessProbe:
        httpGet:
          path: /readyz
          port: {{ .portName }}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      {{- end }}
      {{- if .preStopSleep }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ .preStopSleep }}"]
      {{- end }}
      resources:
        {{- toYaml .c.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- with .volumeMounts }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with include "latechforce.kafkaMounts" (dict "k" $kafka) }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    # The root filesystem is read-only; a small writable /tmp for libraries that want one.
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- with .volumes }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with include "latechforce.kafkaVolumes" (dict "root" $root "k" $kafka) }}
    {{- . | nindent 4 }}
    {{- end }}
  {{- $affinity := include "latechforce.affinity" (dict "root" $root "component" .component "affinity" .c.affinity) }}
  {{- with $affinity }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: dict root, component, pdb. */}}
{{- define "latechforce.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "latechforce.componentName" . }}
  labels:
    {{- include "latechforce.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" .pdb.minAvailable) }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "latechforce.componentSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* A ClusterIP Service: dict root, component, port, portName, servicePort, type. */}}
{{- define "latechforce.service" }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "latechforce.componentName" . }}
  labels:
    {{- include "latechforce.componentLabels" . | nindent 4 }}
spec:
  type: {{ .type | default "ClusterIP" }}
  selector:
    {{- include "latechforce.componentSelectorLabels" . | nindent 4 }}
  ports:
    - name: {{ .portName }}
      port: {{ .servicePort | default .port }}
      targetPort: {{ .portName }}
      protocol: TCP
{{- end -}}

{{/* A ServiceMonitor: dict root, component, portName. */}}
{{- define "latechforce.serviceMonitor" -}}
{{- if .root.Values.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "latechforce.componentName" . }}
  labels:
    {{- include "latechforce.componentLabels" . | nindent 4 }}
    {{- with .root.Values.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "latechforce.componentSelectorLabels" . | nindent 6 }}
  endpoints:
    - port: {{ .portName }}
      path: /metrics
      interval: {{ .root.Values.serviceMonitor.interval }}
      scrapeTimeout: {{ .root.Values.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- end -}}

{{/* A CPU HorizontalPodAutoscaler: dict root, component, a (autoscaling values). */}}
{{- define "latechforce.hpa" }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "latechforce.componentName" . }}
  labels:
    {{- include "latechforce.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "latechforce.componentName" . }}
  minReplicas: {{ max 1 .a.minReplicas }}
  maxReplicas: {{ .a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .a.targetCPUUtilizationPercentage }}
{{- end -}}

{{/* The Kafka settings of one component: `kafka` overridden by the component's own
     `kafka` (its principal: a SASL user and its password Secret, or a TLS client
     certificate), as YAML. Arguments: root, c (the component's values). */}}
{{- define "latechforce.kafkaOf" -}}
{{- $k := deepCopy .root.Values.kafka -}}
{{- with .c.kafka }}{{ $k = mergeOverwrite $k (deepCopy .) }}{{ end -}}
{{- toYaml $k -}}
{{- end -}}

{{/* A component's Kafka security settings (container env), checked: a SASL protocol
     needs a mechanism, a user and the Secret with the password. Arguments: k (from
     latechforce.kafkaOf), component. */}}
{{- define "latechforce.kafkaEnv" -}}
{{- $k := .k -}}
{{- $where := printf "kafka (for %s)" .component -}}
{{- $sasl := hasPrefix "SASL_" $k.securityProtocol -}}
{{- if and $sasl (not $k.sasl.mechanism) }}{{ fail (printf "%s: sasl.mechanism is required with a SASL securityProtocol" $where) }}{{ end -}}
{{- if and $sasl (not $k.sasl.username) }}{{ fail (printf "%s: sasl.username is required with a SASL securityProtocol" $where) }}{{ end -}}
{{- if and $sasl (not $k.sasl.existingSecret) }}{{ fail (printf "%s: sasl.existingSecret (the Secret with the password) is required with a SASL securityProtocol" $where) }}{{ end -}}
{{- if ne (empty $k.tls.certKey) (empty $k.tls.keyKey) }}{{ fail (printf "%s: tls.certKey and tls.keyKey: mTLS needs both" $where) }}{{ end -}}
{{- if and $k.tls.certKey (not $k.tls.existingSecret) }}{{ fail (printf "%s: tls.existingSecret is required with tls.certKey" $where) }}{{ end -}}
{{- $vars := dict "LTF_KAFKA_SECURITY_PROTOCOL" $k.securityProtocol -}}
{{- if $sasl }}
{{- $_ := set $vars "LTF_KAFKA_SASL_MECHANISM" $k.sasl.mechanism }}
{{- $_ := set $vars "LTF_KAFKA_SASL_USERNAME" $k.sasl.username }}
{{- $_ := set $vars "LTF_KAFKA_SASL_PASSWORD_FILE" (printf "/etc/ltf/kafka-sasl/%s" $k.sasl.passwordKey) }}
{{- end }}
{{- if and $k.tls.existingSecret $k.tls.caKey }}
{{- $_ := set $vars "LTF_KAFKA_SSL_CA_LOCATION" (printf "/etc/ltf/kafka-tls/%s" $k.tls.caKey) }}
{{- end }}
{{- if $k.tls.certKey }}
{{- $_ := set $vars "LTF_KAFKA_SSL_CERTIFICATE_LOCATION" (printf "/etc/ltf/kafka-tls/%s" $k.tls.certKey) }}
{{- $_ := set $vars "LTF_KAFKA_SSL_KEY_LOCATION" (printf "/etc/ltf/kafka-tls/%s" $k.tls.keyKey) }}
{{- end }}
{{- if $k.properties }}
{{- $_ := set $vars "LTF_KAFKA_PROPERTIES_FILE" "/etc/ltf/kafka-properties/client.properties" }}
{{- end }}
{{- include "latechforce.envMap" $vars }}
{{- end -}}

{{/* The volumes with a component's Kafka SASL password, TLS material and properties.
     Arguments: root, k (from latechforce.kafkaOf). */}}
{{- define "latechforce.kafkaVolumes" -}}
{{- $k := .k -}}
{{- if and (hasPrefix "SASL_" $k.securityProtocol) $k.sasl.existingSecret }}
- name: kafka-sasl
  secret:
    secretName: {{ $k.sasl.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if $k.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ $k.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- if $k.properties }}
- name: kafka-properties
  configMap:
    name: {{ include "latechforce.fullname" .root }}-kafka
{{- end }}
{{- end -}}

{{/* Where those volumes are mounted (read-only). Arguments: k. */}}
{{- define "latechforce.kafkaMounts" -}}
{{- $k := .k -}}
{{- if and (hasPrefix "SASL_" $k.securityProtocol) $k.sasl.existingSecret }}
- name: kafka-sasl
  mountPath: /etc/ltf/kafka-sasl
  readOnly: true
{{- end }}
{{- if $k.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/ltf/kafka-tls
  readOnly: true
{{- end }}
{{- if $k.properties }}
- name: kafka-properties
  mountPath: /etc/ltf/kafka-properties
  readOnly: true
{{- end }}
{{- end -}}
