package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun: the command against a real daemon process in front of the
// harness's origin (no seeder): 0 unexpected answers, the daemon's memory
// and the baseline ratio in the report; missing flags are refused.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon process; skipped with -short")
	}
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	for i, ref := range []string{"cmd/warm:v1", "cmd/cold:v1"} {
		im, err := harness.BlobImage(uint64(300+i), 256<<10, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Push(im, ref); err != nil {
			t.Fatal(err)
		}
	}
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: o})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, []string{"--shim", d.RegistryURL, "--origin", o.URL(), "--warm", "cmd/warm:v1", "--cold", "cmd/cold:v1",
		"--requests", "60", "--pid", strconv.Itoa(d.Pid())}, &out, &errOut)
	if err != nil {
		t.Fatalf("shoal-load: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	for _, want := range []string{"60 requests at the daemon", " 0 unexpected answers", "peak (VmHWM)", "daemon over origin"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := run(ctx, []string{"--shim", d.RegistryURL}, &out, &errOut); err == nil {
		t.Fatal("shoal-load without --origin, --warm and --cold succeeded")
	}
}
