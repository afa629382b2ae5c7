package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/nerstream/nerstream/model/hub"
)

// runModelPull is `nerstream model pull REF [--sha256 HEX]
// [--require-sha256] [--dir DIR] [--force]`: it downloads a GGUF model into
// the model cache and prints its local path on stdout. Progress goes to
// stderr: a bar on a terminal, else one line at the end. Bad usage, a bad
// REF or a bad --sha256 exit 2; download, HTTP and checksum failures exit 1.
func runModelPull(ctx context.Context, s streams, args []string) error {
	fset := flag.NewFlagSet("model pull", flag.ContinueOnError)
	sum := fset.String("sha256", "", "the expected SHA-256 of the file, 64 hex digits; wins over the server's (default: the server's, when it gives one)")
	require := fset.Bool("require-sha256", false, "fail when there is no SHA-256 to verify against (default: keep the file, reported as not verified)")
	dir := fset.String("dir", "", "the model cache (default: $NERSTREAM_MODEL_DIR, else $NERSTREAM_HOME/models, else $XDG_CACHE_HOME/nerstream/models, else ~/.cache/nerstream/models)")
	force := fset.Bool("force", false, "download again even when the cache holds a file of that name")
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
