package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/nerstream/nerstream/engines"
	"github.com/nerstream/nerstream/model/llama"
)

// runVersion is `nerstream version` (and `nerstream --version`): the
// build, the SIMD it was compiled with against the CPU's, and the GPU
// backends found.
func runVersion(_ context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("version", flag.ContinueOnError)
	dir := fset.String("backends-dir", "", "the folder of the GPU backend modules (default: $NERSTREAM_HOME/backends or ~/.local/share/nerstream/backends, when it exists)")
	asJSON := fset.Bool("json", false, "print JSON")
	if err := parseNoArgs(fset, args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(s.err, &slog.HandlerOptions{Level: slog.LevelError}))
	b, err := engines.Describe(*dir, log)
	if err != nil {
		return usagef("--backends-dir: %v", err)
	}
	if *asJSON {
		return writeJSON(s.out, b)
	}
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	version := b.Version
	if b.Revision != "" {
		version += " (" + b.Revision + ")"
	}
	fmt.Fprintf(w, "nerstream\t%s\n", version)
	fmt.Fprintf(w, "go\t%s\n", b.GoVersion)
	fmt.Fprintf(w, "llama.cpp\t%s (%s)\n", b.LlamaCpp, b.GGMLSource)
	fmt.Fprintf(w, "SIMD (build)\t%s\n", orNone(b.SIMD.Build))
	if b.SIMD.CPU != nil {
		fmt.Fprintf(w, "SIMD (CPU)\t%s\n", orNone(b.SIMD.CPU))
	}
	if len(b.SIMD.Missing) > 0 {
		fmt.Fprintf(w, "warning\tthis build lacks %s, which the CPU has: the CPU engine runs several times slower; %s\n", strings.Join(b.SIMD.Missing, ", "), llama.BuildFlagsHint)
	}
	var backends []string
	for _, be := range b.Backends {
		if be.Error != "" {
			backends = append(backends, be.Path+" (not loaded: "+be.Error+")")
		} else {
			backends = append(backends, be.Name+" ("+be.Path+")")
		}
	}
	if len(backends) == 0 {
		backends = []string{"none in " + b.BackendsDir + " (make vulkan or make cuda builds them there)"}
	}
	fmt.Fprintf(w, "GPU backends\t%s\n", strings.Join(backends, "; "))
	var devices []string
	for _, d := range b.Devices {
		devices = append(devices, d.Name)
	}
	fmt.Fprintf(w, "devices\t%s\n", strings.Join(devices, ", "))
	return w.Flush()
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, " ")
}
