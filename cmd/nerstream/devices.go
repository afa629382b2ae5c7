package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"text/tabwriter"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/llama"
)

// runDevices is `nerstream devices`: the GPU backend modules it loads and
// every device a model can run on, with its memory.
func runDevices(_ context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("devices", flag.ContinueOnError)
	dir := fset.String("backends-dir", "", "the folder of the GPU backend modules (default: $NERSTREAM_HOME/backends or ~/.local/share/nerstream/backends, when it exists)")
	asJSON := fset.Bool("json", false, "print JSON")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bs, err := engines.LoadBackends(*dir, log)
	if err != nil {
		return usagef("--backends-dir: %v", err)
	}
	devices := llama.Devices()
	if *asJSON {
		out := struct {
			Backends []engines.BuildBackend `json:"backends"`
			Devices  []llama.Device         `json:"devices"`
		}{Backends: []engines.BuildBackend{}, Devices: devices}
		for _, b := range bs {
			e := engines.BuildBackend{Backend: b}
			if b.Err != nil {
				e.Error = b.Err.Error()
			}
			out.Backends = append(out.Backends, e)
		}
		return writeJSON(s.out, out)
	}
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEVICE\tBACKEND\tTYPE\tFREE\tTOTAL\tDESCRIPTION")
	for _, d := range devices {
		fmt.Fprintf(w, "%s\t%s\t%s\t%.1f GiB\t%.1f GiB\t%s\n", d.Name, d.Backend, d.Type, float64(d.FreeBytes)/(1<<30), float64(d.TotalBytes)/(1<<30), d.Description)
	}
	return w.Flush()
}
