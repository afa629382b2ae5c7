package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IsBareName reports whether s names a model by its file name alone
// ("UniNER-7B-type.Q4_K_M.gguf"): no folder, and not a reference. Such a
// name that is not a file of the working folder is looked up in the
// cache with [Find].
func IsBareName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, `/\`) && !IsRef(s)
}

// Find returns the model that a bare name (see [IsBareName]) means. A
// file (or anything else) of that name in the working folder wins, and is
// returned as it is, as any relative path would be. Otherwise it is the
// model of the cache (opts.Dir, else [CacheDir]) whose file name is name;
// Find looks at:
//
//   - {cache}/NAME: a file put in the cache folder by hand (or pulled into
//     the flat layout of earlier versions), used as it is;
//   - the models pulled from any source, {cache}/hf/OWNER/REPO/REV/NAME
//     and {cache}/url/HOST/KEY/NAME, each after the load-time check of its
//     manifest that [Resolve] makes (a pulled file without a readable
//     manifest is not a candidate: Resolve would download it again).
//
// Exactly one must match. None is a [*NotCachedError] (it wraps
// [ErrNotCached]) that says which pull would fetch the model; several are
// [ErrAmbiguous], naming each, since the name alone cannot choose among
// sources; a candidate that fails its check is [ErrCorrupt]. Find never
// downloads anything.
func Find(name string, opts Options) (string, error) {
	if !IsBareName(name) {
		return "", fmt.Errorf("%w: %q is not a bare model file name", ErrBadRef, name)
	}
	if _, err := os.Lstat(name); err == nil {
		return name, nil
	}
	dir := opts.Dir
	if dir == "" {
		d, err := CacheDir()
		if err != nil {
			return "", err
		}
		dir = d
	}
	type candidate struct{ path, from string }
	var found []candidate
	if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
		found = append(found, candidate{filepath.Join(dir, name), "put in the cache folder by hand"})
	}
	pulled, err := pulledNamed(dir, name)
	if err != nil {
		return "", err
	}
	var corrupt error
	for _, p := range pulled {
		m, err := readManifest(p + manifestSuffix)
		if err != nil {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if err := m.check(p, p+manifestSuffix, fi, false); err != nil {
			corrupt = errors.Join(corrupt, fmt.Errorf("%w; nerstream model pull %s fetches it again", err, sourceRef(m.Source)))
			continue
		}
		found = append(found, candidate{p, "pulled from " + sourceRef(m.Source)})
	}
	switch {
	case len(found) == 1:
		return found[0].path, nil
	case len(found) > 1:
		var list []string
		for _, c := range found {
			list = append(list, fmt.Sprintf("%s (%s)", c.path, c.from))
		}
		return "", fmt.Errorf("%w: the model cache holds %d models named %q: %s; give the path or the reference of the one to use",
			ErrAmbiguous, len(found), name, strings.Join(list, ", "))
	case corrupt != nil:
		return "", corrupt
	}
	return "", &NotCachedError{Name: name, Dir: dir}
}

// pulledNamed lists the files of the keyed layout named name: those
// pulled from an hf:// reference, {dir}/hf/OWNER/REPO/REV/FILE, FILE being
// name or a path in the repository ending in it (escaped: sub%2Fname), and
// those pulled from an address, {dir}/url/HOST/KEY/name.
func pulledNamed(dir, name string) ([]string, error) {
	var out []string
	for _, layout := range []struct {
		root  string
		depth int // folders between root and the file
	}{{"hf", 3}, {"url", 2}} {
		root := filepath.Join(dir, layout.root)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == root {
					return filepath.SkipDir
				}
				return err
			}
			rel, _ := filepath.Rel(root, p)
			depth := strings.Count(rel, string(filepath.Separator))
			switch {
			case d.IsDir() && rel != "." && depth >= layout.depth:
				return filepath.SkipDir
			case d.Type().IsRegular() && depth == layout.depth && escapedNameIs(d.Name(), name):
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("looking for %q in the model cache: %w", name, err)
		}
	}
	return out, nil
}

// escapedNameIs reports whether a cached file's name (a repository path
// escaped as one element, see [Ref.CachePath]) ends in the file name.
func escapedNameIs(file, name string) bool {
	u, err := url.PathUnescape(file)
	return err == nil && (u == name || strings.HasSuffix(u, "/"+name))
}

// sourceRef is the reference that pulls the model of a manifest's Source:
// an hf:// source with the default revision loses its "@main".
func sourceRef(src string) string {
	if r, err := ParseRef(src); err == nil {
		return r.Redacted()
	}
	return fmt.Sprintf("%q", src)
}

// NotCachedError is a bare model name that [Find] did not find in the
// cache. Its message says the pull that fetches it: [DefaultModelRef] for
// [DefaultModelFile], else a template.
type NotCachedError struct {
	// Name is the file name looked for; Dir, the cache folder.
	Name, Dir string
}

func (e *NotCachedError) Error() string {
	return fmt.Sprintf("%q is neither a file of the working folder nor in the model cache (%s); %s", e.Name, e.Dir, e.Pull())
}

// Unwrap makes the error match [ErrNotCached].
func (e *NotCachedError) Unwrap() error { return ErrNotCached }

// Pull says, in words, how to fetch the model into the cache.
func (e *NotCachedError) Pull() string {
	if e.Name == DefaultModelFile {
		return "fetch it with: nerstream model pull " + DefaultModelRef +
			" (or give that reference instead of the file name, to pull it on first use)"
	}
	// The name as Go would quote it, without the quotes: no control
	// character reaches a log line.
	n := strconv.Quote(e.Name)
	n = n[1 : len(n)-1]
	return fmt.Sprintf("fetch it with: nerstream model pull hf://OWNER/REPO/%s (its Hugging Face repository) "+
		"or nerstream model pull https://HOST/PATH/%s, or give the file's path", n, n)
}
