package hub

// Error is the type of the package's sentinel errors, which are constants;
// every error a function of the package returns for one of these reasons
// wraps the matching one (test with errors.Is).
type Error string

func (e Error) Error() string { return string(e) }

const (
	// ErrBadRef: a model reference that does not parse, or an address
	// that is not allowed (plain http to a host that is not loopback).
	ErrBadRef Error = "bad model reference"
	// ErrBadEndpoint: an Options.Endpoint or HF_ENDPOINT that is not an
	// https address (or http on a loopback host).
	ErrBadEndpoint Error = "bad Hugging Face endpoint"
	// ErrBadDigest: an Options.SHA256 that is not 64 hex digits.
	ErrBadDigest Error = "bad SHA-256"
	// ErrNotFound: HTTP 404.
	ErrNotFound Error = "not found"
	// ErrAccessDenied: HTTP 401 or 403.
	ErrAccessDenied Error = "access denied"
	// ErrChecksum: the file's SHA-256 is not the expected one.
	ErrChecksum Error = "SHA-256 mismatch"
	// ErrNotGGUF: the file does not start with the GGUF magic.
	ErrNotGGUF Error = "not a GGUF file"
	// ErrNoDigest: Options.RequireSHA256, and no digest to check against.
	ErrNoDigest Error = "not verified"
	// ErrTooBig: the model is larger than Options.MaxBytes.
	ErrTooBig Error = "model too big"
	// ErrCorrupt: a cached model is not what its manifest recorded (its
	// size or its SHA-256 differs). Pull and Resolve report it and download
	// the model again.
	ErrCorrupt Error = "corrupted"
	// ErrNotCached: a bare model file name (see IsBareName) that the
	// cache does not hold; Find returns it as a *NotCachedError.
	ErrNotCached Error = "not in the model cache"
	// ErrAmbiguous: a bare model file name that several models of the
	// cache have.
	ErrAmbiguous Error = "ambiguous model name"
)
