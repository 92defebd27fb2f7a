// Package k8stest holds the real-cluster end-to-end test of the Helm chart
// deploy/helm/shoal (make test-k8s): the chart validated by a real
// apiserver, installed with the image of `make image` on a real kubelet
// (internal/harness/kube), an image pulled through shoal by the kubelet,
// an upgrade that keeps the node's store and peer ID, and an uninstall
// that restores containerd's certs.d. It has no code besides the test.
package k8stest
