#!/usr/bin/env bash
# Installs what the real-cluster test (make test-k8s) uses on a fresh Debian 12
# machine (run as root). Idempotent and quick when everything is present:
#   - Debian: etcd-server, containerd + ctr, runc, iptables, CNI plugins
#   - kube: one binary of k8s.io/kubernetes $K8S_VERSION (.ci/k8s: apiserver,
#     controller-manager, scheduler, kubelet, kubectl), with symlinks
#     kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl
#   - helm $HELM_VERSION, its default Kubernetes version set to $K8S_VERSION
# Built binaries go to $SHOAL_K8S_DIR (default /var/cache/shoal-k8s/$K8S_VERSION),
# outside the repository, with a stamp file: they are rebuilt only when the
# stamp (the versions and a hash of .ci/k8s) differs. The first build of the
# Kubernetes binary is long (about 11 min on 2 idle cores).
set -euo pipefail

K8S_VERSION=v1.37.2
HELM_VERSION=v3.22.0
HELM_MOD=helm.sh/helm/v3/cmd/helm
here=$(cd "$(dirname "$0")" && pwd)
DIR=${SHOAL_K8S_DIR:-/var/cache/shoal-k8s/$K8S_VERSION}
STAMP=$DIR/stamp

# shellcheck source=lib.sh
. "$here/lib.sh"

# --- Debian packages -------------------------------------------------------
need_pkgs etcd:etcd-server containerd:containerd ctr:containerd runc:runc iptables:iptables \
	/usr/lib/cni/loopback:containernetworking-plugins

# --- kube and helm ------------------------------------------------------------
src_hash=$(cat "$here/k8s/go.mod" "$here/k8s/go.sum" "$here/k8s/main.go" | sha256sum | cut -c1-16)
want="kubernetes=$K8S_VERSION helm=$HELM_VERSION src=$src_hash"
if [[ -f $STAMP && $(cat "$STAMP") == "$want" && -x $DIR/kube && -x $DIR/helm ]]; then
	log "kube $K8S_VERSION, helm $HELM_VERSION: present in $DIR"
	exit 0
fi
need_go "kube and helm"
mkdir -p "$DIR"
rm -f "$STAMP"
# Each part has a stamp of its own, so a change of one rebuilds only it.
export GOFLAGS=-mod=mod GO111MODULE=on GOWORK=off
major=${K8S_VERSION#v}
major=${major%%.*}
minor=${K8S_VERSION#v*.}
minor=${minor%%.*}

kube_ok() { [[ -x $DIR/kube && -f $DIR/kube.stamp && $(cat "$DIR/kube.stamp") == "kubernetes=$K8S_VERSION src=$src_hash" ]]; }
if kube_ok; then
	log "kube $K8S_VERSION: present"
else
	start=$SECONDS
	log "building kube $K8S_VERSION (k8s.io/kubernetes; long on a cold build cache)"
	vpkg=k8s.io/component-base/version
	(
		cd "$here/k8s"
		go build -buildvcs=false -trimpath -o "$DIR/kube.tmp" \
			-ldflags "-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=$major -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean" .
	)
	mv -f "$DIR/kube.tmp" "$DIR/kube"
	for name in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
		ln -sfn kube "$DIR/$name"
	done
	log "built kube in $((SECONDS - start)) s"
	echo "kubernetes=$K8S_VERSION src=$src_hash" >"$DIR/kube.stamp"
fi

# helm reports its own version, which serves as its stamp.
helm_version() { "$DIR/helm" version --template '{{.Version}}' 2>/dev/null || true; }
if [[ -x $DIR/helm && $(helm_version) == "$HELM_VERSION" ]]; then
	log "helm $HELM_VERSION: present"
else
	start=$SECONDS
	log "building helm $HELM_VERSION"
	new_scratch
	hpkg=helm.sh/helm/v3/pkg
	GOBIN="$scratch/bin" go install -trimpath \
		-ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X $hpkg/chartutil.k8sVersionMajor=$major -X $hpkg/chartutil.k8sVersionMinor=$minor -X $hpkg/lint/rules.k8sVersionMajor=$major -X $hpkg/lint/rules.k8sVersionMinor=$minor" \
		"$HELM_MOD@$HELM_VERSION"
	mv -f "$scratch/bin/helm" "$DIR/helm"
	log "built helm in $((SECONDS - start)) s"
fi

"$DIR/kubectl" version --client >/dev/null
"$DIR/helm" version --short >/dev/null
echo "$want" >"$STAMP"
log "installed kube, helm in $DIR"
