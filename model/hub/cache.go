package hub

import (
	"encoding/json"
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

// manifestSuffix names a model's manifest: {FILE}.manifest.json beside
// {FILE}. A model's file name ends in .gguf, so no model is a manifest.
const manifestSuffix = ".manifest.json"

// manifest is what the cache knows of a model, written beside it when it
// is downloaded.
type manifest struct {
	// Source is the Ref.Source the model came from.
	Source string `json:"source"`
	// Size and SHA256 are the file's, computed while it was downloaded.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Verified says SHA256 matched an expected digest at download, from
	// DigestFrom (Result.DigestFrom).
	Verified   bool   `json:"verified"`
	DigestFrom string `json:"digest_from,omitempty"`
	// ModTime is the file's modification time, in nanoseconds since 1970,
	// when SHA256 was last found to be its digest.
	ModTime int64 `json:"mtime_ns"`
	// Pulled is when it was downloaded, RFC 3339, for people.
	Pulled string `json:"pulled,omitempty"`
}

func readManifest(path string) (manifest, error) {
	var m manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	if m.Source == "" || m.Size < 0 || !isHex64(m.SHA256) {
		return m, fmt.Errorf("%s: no source, size or SHA-256", path)
	}
	return m, nil
}

// write replaces the manifest at path, whole or not at all.
func (m manifest) write(path string) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing the manifest: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing the manifest: %w", err)
	}
	return nil
}

// check compares the model file (fi, from os.Stat of file) with the
// manifest at mpath, m. A size that differs is ErrCorrupt at once. With
// the same size and modification time the file is taken as it is, unless
// full; otherwise it is hashed, a digest that differs is ErrCorrupt, and
// one that matches records the new time in the manifest, so that the next
// load is cheap again.
func (m manifest) check(file, mpath string, fi os.FileInfo, full bool) error {
	if fi.Size() != m.Size {
		return fmt.Errorf("%w: %s has %d bytes, its manifest says %d", ErrCorrupt, file, fi.Size(), m.Size)
	}
	mtime := fi.ModTime().UnixNano()
	if !full && mtime == m.ModTime {
		return nil
	}
	got, err := hashFile(file)
	if err != nil {
		return err
	}
	if got != m.SHA256 {
		return fmt.Errorf("%w: %s has SHA-256 %s, its manifest says %s", ErrCorrupt, file, got, m.SHA256)
	}
	if mtime != m.ModTime {
		m.ModTime = mtime
		_ = m.write(mpath) // best effort: the next load hashes again
	}
	return nil
}

// FileSHA256 returns a model file's SHA-256 in hex: the digest its
// manifest holds when the file's size and modification time still match
// it (a pulled model costs no hashing), or else the digest of its bytes,
// read once (about 3 s for a 4 GB file at SHA-NI speed).
func FileSHA256(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if m, err := readManifest(path + manifestSuffix); err == nil && m.SHA256 != "" &&
		m.Size == fi.Size() && m.ModTime == fi.ModTime().UnixNano() {
		return m.SHA256, nil
	}
	return hashFile(path)
}
