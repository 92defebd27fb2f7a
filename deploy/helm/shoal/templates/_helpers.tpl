{{/* Names, labels, the image and the argument lists shared by the templates. */}}

{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shoal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "shoal.tag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* shoal.selector: the selector labels of one component (daemon or seeder); call with (list $ "daemon"). */}}
{{- define "shoal.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "shoal.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "shoal.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag -}}
{{- end -}}

{{- define "shoal.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "shoal.tag" .) -}}
{{- end -}}
{{- end -}}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "shoal.pskSecret" -}}
{{- default (printf "%s-psk" (include "shoal.fullname" .)) .Values.psk.existingSecret -}}
{{- end -}}

{{- define "shoal.seederIdentitySecret" -}}
{{- default (printf "%s-seeder-identity" (include "shoal.fullname" .)) .Values.seeder.identity.existingSecret -}}
{{- end -}}

{{- define "shoal.seederService" -}}
{{- printf "%s-seeder" (include "shoal.fullname" .) -}}
{{- end -}}

{{/*
shoal.quantityBytes: a Kubernetes memory quantity (1Gi, 512Mi, 1G, 1073741824)
as a whole number of bytes.
*/}}
{{- define "shoal.quantityBytes" -}}
{{- $q := toString . -}}
{{- $num := $q -}}
{{- $mult := 1.0 -}}
{{- $units := dict "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "Pi" 1125899906842624.0 "k" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "P" 1000000000000000.0 -}}
{{- range $u, $m := $units -}}
{{- if hasSuffix $u $q -}}
{{- $num = trimSuffix $u $q -}}
{{- $mult = $m -}}
{{- end -}}
{{- end -}}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?$" $num) -}}
{{- fail (printf "memory limit %q: want a quantity such as 1Gi, 512Mi or 1G" $q) -}}
{{- end -}}
{{- printf "%.0f" (floor (mulf (float64 $num) $mult)) -}}
{{- end -}}

{{/* shoal.goMemLimit: GOMEMLIMIT for (list resources percent), or "" without a memory limit. */}}
{{- define "shoal.goMemLimit" -}}
{{- $res := index . 0 -}}
{{- $pct := index . 1 -}}
{{- $limit := dig "limits" "memory" "" $res -}}
{{- if $limit -}}
{{- printf "%.0f" (floor (divf (mulf (float64 (include "shoal.quantityBytes" $limit)) (float64 $pct)) 100.0)) -}}
{{- end -}}
{{- end -}}

{{/*
shoal.seeders computes, once per render, the seeders' names, identity keys
(base64 of the libp2p-encoded Ed25519 private key) and peer IDs, and keeps
them in .Values._shoalSeeders for every template. The keys come from the
existing identity Secret when it has them (upgrades keep the peer IDs), else
they are generated: sprig's Ed25519 key gives the seed (the last 32 bytes of
its PKCS#8 form), a self-signed certificate made with it gives the public key
(the 32 bytes after the SubjectPublicKeyInfo header), and the peer ID is the
CIDv1 (libp2p-key codec, identity multihash of the public key) in multibase
base64urlpad ("U": no "/", so it fits in a /p2p/ multiaddr, as a real
kubelet showed), which libp2p's peer.Decode reads like the base58 form.
*/}}
{{- define "shoal.seeders" -}}
{{- if not (hasKey .Values "_shoalSeeders") -}}
{{- $out := list -}}
{{- $full := include "shoal.fullname" . -}}
{{- if .Values.seeder.enabled -}}
{{- if .Values.seeder.identity.existingSecret -}}
{{- range $i, $id := .Values.seeder.identity.peerIDs -}}
{{- $out = append $out (dict "name" (printf "%s-seeder-%d" $full $i) "id" $id "key" "") -}}
{{- end -}}
{{- else -}}
{{- $existing := dict -}}
{{- with lookup "v1" "Secret" .Release.Namespace (include "shoal.seederIdentitySecret" .) -}}
{{- $existing = .data | default dict -}}
{{- end -}}
{{- range $i := until (int .Values.seeder.replicas) -}}
{{- $name := printf "%s-seeder-%d" $full $i -}}
{{- $k := printf "%s.key" $name -}}
{{- $p := printf "%s.id" $name -}}
{{- if and (hasKey $existing $k) (hasKey $existing $p) -}}
{{- $out = append $out (dict "name" $name "key" (index $existing $k) "id" (index $existing $p | b64dec)) -}}
{{- else -}}
{{- $pem := genPrivateKey "ed25519" -}}
{{- $der := $pem | replace "-----BEGIN PRIVATE KEY-----" "" | replace "-----END PRIVATE KEY-----" "" | nospace | b64dec -}}
{{- $seed := substr 16 48 $der -}}
{{- $cert := genSelfSignedCertWithKey "shoal-seeder" nil nil 1 $pem -}}
{{- $cder := $cert.Cert | replace "-----BEGIN CERTIFICATE-----" "" | replace "-----END CERTIFICATE-----" "" | nospace | b64dec -}}
{{- $parts := splitList "\x30\x2a\x30\x05\x06\x03\x2b\x65\x70\x03\x21\x00" $cder -}}
{{- if ne (len $parts) 2 -}}
{{- fail "shoal: could not find the Ed25519 public key in the generated certificate" -}}
{{- end -}}
{{- $pub := substr 0 32 (index $parts 1) -}}
{{- $key := printf "\x08\x01\x12\x40%s%s" $seed $pub | b64enc -}}
{{- $id := printf "U%s" (printf "\x01\x72\x00\x24\x08\x01\x12\x20%s" $pub | b64enc | replace "+" "-" | replace "/" "_") -}}
{{- $out = append $out (dict "name" $name "key" $key "id" $id) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $_ := set .Values "_shoalSeeders" $out -}}
{{- end -}}
{{- end -}}

{{/*
shoal.upstreams: the NAME -> URL mapping as JSON: every mirrored registry
(from upstreams, else https://NAME; Docker Hub's is https://registry-1.docker.io)
and every other entry of upstreams.
*/}}
{{- define "shoal.upstreams" -}}
{{- $up := dict -}}
{{- range .Values.registries.mirror -}}
{{- $_ := set $up . (ternary "https://registry-1.docker.io" (printf "https://%s" .) (eq . "docker.io")) -}}
{{- end -}}
{{- range $k, $v := .Values.upstreams -}}
{{- if $v -}}
{{- $_ := set $up $k $v -}}
{{- else -}}
{{- $_ := unset $up $k -}}
{{- end -}}
{{- end -}}
{{- toJson $up -}}
{{- end -}}

{{/* shoal.upstreamArgs: the --upstream, --allow-upstream-pattern and --default-upstream flags. */}}
{{- define "shoal.upstreamArgs" -}}
{{- $up := include "shoal.upstreams" . | fromJson }}
{{- range $name := keys $up | sortAlpha }}
- --upstream={{ $name }}={{ index $up $name }}
{{- end }}
{{- range .Values.allowUpstreamPatterns }}
- --allow-upstream-pattern={{ . }}
{{- end }}
{{- with .Values.defaultUpstream }}
- --default-upstream={{ . }}
{{- end }}
{{- if .Values.pullSecrets }}
- --pull-secrets-dir=/etc/shoal/pull-secrets
{{- end }}
{{- end -}}

{{/* shoal.swarmKeyArg: --psk-file or --open-swarm. */}}
{{- define "shoal.swarmKeyArg" -}}
{{- if .Values.openSwarm }}
- --open-swarm
{{- else }}
- --psk-file=/etc/shoal/psk/{{ .Values.psk.key }}
{{- end }}
{{- end -}}

{{/* shoal.sharedVolumes: the PSK and the pull secrets. */}}
{{- define "shoal.sharedVolumes" -}}
{{- if not .Values.openSwarm }}
- name: psk
  secret:
    secretName: {{ include "shoal.pskSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.psk.key }}
        path: {{ .Values.psk.key }}
{{- end }}
{{- range .Values.pullSecrets }}
- name: pull-{{ . | trunc 58 | trimSuffix "-" }}
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: .dockerconfigjson
        path: .dockerconfigjson
{{- end }}
{{- end -}}

{{- define "shoal.sharedMounts" -}}
{{- if not .Values.openSwarm }}
- name: psk
  mountPath: /etc/shoal/psk
  readOnly: true
{{- end }}
{{- range .Values.pullSecrets }}
- name: pull-{{ . | trunc 58 | trimSuffix "-" }}
  mountPath: /etc/shoal/pull-secrets/{{ . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* shoal.containerSecurity: the securityContext of every non-root container. */}}
{{- define "shoal.containerSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* shoal.probeHost: where the kubelet probes a listener "host:port" (127.0.0.1 for a wildcard). */}}
{{- define "shoal.probeHost" -}}
{{- $h := regexReplaceAll ":[0-9]+$" . "" | trimPrefix "[" | trimSuffix "]" -}}
{{- if or (eq $h "") (eq $h "0.0.0.0") (eq $h "::") -}}127.0.0.1{{- else -}}{{ $h }}{{- end -}}
{{- end -}}

{{- define "shoal.port" -}}
{{- regexFind "[0-9]+$" . -}}
{{- end -}}

{{/*
shoal.rootWriterSecurity: the containers that write the host's certs.d, which
containerd's packaging makes root-owned: root, but with every capability
dropped (no CAP_DAC_OVERRIDE: only what root owns is writable), a read-only
root filesystem and no privilege escalation.
*/}}
{{- define "shoal.rootWriterSecurity" -}}
runAsUser: 0
runAsGroup: 0
runAsNonRoot: false
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* shoal.certsMounts: certs.d read-write at /host/certs.d, containerd's config directory read-only at its own path. */}}
{{- define "shoal.certsMounts" -}}
- name: certs-d
  mountPath: /host/certs.d
{{- with .Values.containerd.configFile }}
- name: containerd-config
  mountPath: {{ dir . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* shoal.seederIDs: the seeders' peer IDs, one per line (after shoal.seeders). */}}
{{- define "shoal.seederIDs" -}}
{{- range .Values._shoalSeeders }}{{ .id }}
{{ end -}}
{{- end -}}
