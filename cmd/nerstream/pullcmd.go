package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nerstream/nerstream/model/hub"
)

// runModelPull is `nerstream model pull REF [--sha256 HEX]
// [--require-sha256] [--dir DIR] [--force] [--max-bytes SIZE]`: it
// downloads a GGUF model into the model cache and prints its local path on
// stdout. Progress goes to stderr: a bar on a terminal, else one line at
// the end. Bad usage, a bad REF, a bad --sha256 or --max-bytes exit 2;
// download, HTTP, size and checksum failures exit 1.
func runModelPull(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("model pull", flag.ContinueOnError)
	sum := fset.String("sha256", "", "the expected SHA-256 of the file, 64 hex digits; wins over the server's (default: the server's, when it gives one)")
	require := fset.Bool("require-sha256", false, "fail when there is no SHA-256 to verify against (default: keep the file, reported as not verified)")
	dir := fset.String("dir", "", "the model cache (default: $NERSTREAM_MODEL_DIR, else $NERSTREAM_HOME/models, else $XDG_CACHE_HOME/nerstream/models, else ~/.cache/nerstream/models)")
	force := fset.Bool("force", false, "download again even when the cache holds the model (without it, a cached model is hashed and checked against its manifest)")
	maxBytes := byteSize(hub.DefaultMaxBytes)
	fset.Var(&maxBytes, "max-bytes", "refuse a model larger than this, from its Content-Length before the download and while it downloads: bytes, or a number with KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)")
	pos, err := parseFlags(fset, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one model reference, hf://OWNER/REPO/FILE.gguf[@REVISION] or https://HOST/PATH/FILE.gguf (the default model is %s)", hub.DefaultModelRef)
	}
	if _, err := hub.ParseRef(pos[0]); err != nil {
		return usageError{err}
	}
	opts := hub.Options{
		Dir:           *dir,
		SHA256:        *sum,
		RequireSHA256: *require,
		Force:         *force,
		MaxBytes:      int64(maxBytes),
		Progress:      s.err,
		Bar:           hub.IsTerminal(s.err),
	}
	res, err := hub.Pull(ctx, pos[0], opts)
	if err != nil {
		if errors.Is(err, hub.ErrBadRef) || errors.Is(err, hub.ErrBadDigest) || errors.Is(err, hub.ErrBadEndpoint) {
			return usageError{err}
		}
		return err
	}
	fmt.Fprintln(s.out, res.Path)
	return nil
}

// byteSize is a flag value in bytes: a whole number, alone or followed by
// a unit, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers
// of 1024), in any case: "34359738368", "32GiB", "40 GB". It must be > 0.
type byteSize int64

func (b *byteSize) String() string {
	units := []string{"TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		n := int64(1) << (10 * (len(units) - i))
		if int64(*b) >= n && int64(*b)%n == 0 {
			return strconv.FormatInt(int64(*b)/n, 10) + u
		}
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n <= 0 {
		return errors.New("want a whole number of bytes above 0, alone or with a unit (KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
	}
	mult := map[string]int64{"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}
	m, ok := mult[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return fmt.Errorf("unknown unit %q (want KB, MB, GB, TB, KiB, MiB, GiB or TiB)", strings.TrimSpace(s[i:]))
	}
	if n > math.MaxInt64/m {
		return errors.New("too large")
	}
	*b = byteSize(n * m)
	return nil
}
