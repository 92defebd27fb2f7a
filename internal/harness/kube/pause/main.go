// Package main is the command pause.
//
// Command pause is the one process of the real-cluster test's images: the
// pod sandbox (containerd's sandbox_image) and the test workload. It prints
// its arguments, if any, as one line (the workload's proof that it ran),
// then sleeps until SIGTERM or SIGINT, reaping children on SIGCHLD without
// blocking (as the sandbox of a pod sharing its PID namespace must).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	if len(os.Args) > 1 {
		fmt.Println(strings.Join(os.Args[1:], " "))
	}
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		reap()
	}
}

// reap collects every exited child; WNOHANG returns at once when none is
// left, so the loop never spins.
func reap() {
	for range 1 << 16 {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
