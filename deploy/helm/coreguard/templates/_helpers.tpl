{{/* The objects' name: the release's, with "coreguard" in it. */}}
{{- define "coreguard.name" -}}
{{- if contains "coreguard" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-coreguard" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object; the selector uses the name label alone, as the kustomize base does. */}}
{{- define "coreguard.labels" -}}
app.kubernetes.io/name: coreguard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The configuration file: the config values, kubeletRootDir from hostPaths. */}}
{{- define "coreguard.config" -}}
{{- $cfg := mergeOverwrite (deepCopy .Values.config) (dict "kubeletRootDir" .Values.hostPaths.kubeletRootDir) -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/*
coreguard's pod uses the host's PID, IPC and network namespaces, which its
own admission allows only in the namespaces listed: refuse to render a
release whose namespace is not among them (exactly or by a glob).
*/}}
{{- define "coreguard.checkNamespace" -}}
{{- range $kind := list "hostPID" "hostIPC" "hostNetwork" -}}
{{- $allowed := index $.Values.config.admission $kind | default list -}}
{{- $ok := has $.Release.Namespace $allowed -}}
{{- range $allowed -}}
{{- if regexMatch "[*?\\[]" . -}}{{- $ok = true -}}{{- end -}}
{{- end -}}
{{- if not $ok -}}
{{- fail (printf "config.admission.%s %v does not allow namespace %q, where coreguard's own pod runs with %s: add it" $kind $allowed $.Release.Namespace $kind) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* nri.runtime names the runtime whose config the init step changes. */}}
{{- define "coreguard.checkRuntime" -}}
{{- if and .Values.nri.patchRuntimeConfig (not (has .Values.nri.runtime (list "containerd" "crio"))) -}}
{{- fail (printf "nri.runtime %q: want containerd or crio" .Values.nri.runtime) -}}
{{- end -}}
{{- end -}}
