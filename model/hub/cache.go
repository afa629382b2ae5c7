package hub

import (
	"fmt"
	"os"
	"path/filepath"
)

// CacheDir returns the model cache folder, the first of:
// $NERSTREAM_MODEL_DIR; $NERSTREAM_HOME/models;
// $XDG_CACHE_HOME/nerstream/models when XDG_CACHE_HOME is an absolute path;
// the user cache folder (os.UserCacheDir: ~/.cache on Linux,
// ~/Library/Caches on macOS, %LocalAppData% on Windows; ~/.cache when it
// has none)/nerstream/models. It does not create the folder. It fails only
// when there is no home folder either.
func CacheDir() (string, error) {
	if d := os.Getenv("NERSTREAM_MODEL_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("NERSTREAM_HOME"); d != "" {
		return filepath.Join(d, "models"), nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "nerstream", "models"), nil
	}
	base, err := os.UserCacheDir()
	if err != nil { // a relative XDG_CACHE_HOME, say
		home, herr := os.UserHomeDir()
		if herr != nil {
			return "", fmt.Errorf("no model cache folder (set NERSTREAM_MODEL_DIR or NERSTREAM_HOME): %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "nerstream", "models"), nil
}
