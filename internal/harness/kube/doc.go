// Package kube runs a real single-node Kubernetes cluster for tests, on
// loopback only: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and a kubelet on a containerd of its own (own root, state,
// socket and CRI config, with config_path a certs.d the test owns), with the
// traps of this kind of sandbox handled (no CAP_SYS_RESOURCE, cgroup v1).
// Only tests import it (internal/layout keeps it that way).
//
//   - cluster.go: Start (skips unless SHOAL_K8S=1), the control plane and
//     the node, Kubectl and Helm against it, Timings (node Ready).
//   - node.go: containerd's and the kubelet's configuration and start.
//   - images.go: images without a registry (go-containerregistry: a layer
//     of one static binary, tarball.WriteToFile), imported into the node's
//     containerd (k8s.io namespace); the pause image built from ./pause.
//   - teardown.go: everything a kubelet leaves behind, removed also when
//     the test fails: pod processes and containerd shims, mounts under the
//     cluster's directories, the /kubepods cgroups, the KUBE-* iptables
//     chains and rules, the kernel settings the kubelet changes, container
//     log links and empty runtime directories.
//   - pki.go: the cluster's CA, certificates and service-account key.
//
// The binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet, kubectl; helm) come from .ci/install-k8s.sh, built once into
// SHOAL_K8S_DIR (default /var/cache/shoal-k8s/v1.37.2); etcd, containerd,
// ctr and runc are Debian's.
package kube
