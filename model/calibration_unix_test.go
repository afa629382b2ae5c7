//go:build unix

package model_test

import (
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nerstream/nerstream/model"
)

// TestReadCalibrationNotRegular: a FIFO (or a device) as the calibration
// file is refused at once: opening one for reading waits for a writer,
// which would hang annotate and serve before they start.
func TestReadCalibrationNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "c.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{fifo, "/dev/null"} {
		done := make(chan error, 1)
		go func() { _, err := model.ReadCalibration(p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, model.ErrCalibration) {
				t.Errorf("%s: %v, want ErrCalibration", p, err)
			}
		case <-time.After(time.Minute): // a hang, not a timing
			t.Fatalf("%s: ReadCalibration still waiting after a minute", p)
		}
	}
}
