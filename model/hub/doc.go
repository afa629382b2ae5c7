// Package hub fetches GGUF models into the local model cache: `nerstream
// model pull`, and the pull-on-first-use of `run` and `demo` (see
// [Resolve]).
//
// # References
//
// A model reference ([ParseRef]) is one of:
//
//   - hf://OWNER/REPO/FILE.gguf[@REVISION]: a file of a Hugging Face model
//     repository. It is fetched from
//     {endpoint}/OWNER/REPO/resolve/{REVISION, default main}/FILE, where the
//     endpoint is $HF_ENDPOINT, else https://huggingface.co, with
//     "Authorization: Bearer $HF_TOKEN" when HF_TOKEN is set. FILE may name a
//     file in a folder of the repository (a/b/FILE.gguf).
//   - https://HOST/PATH/FILE.gguf: any web address whose path ends in a .gguf
//     file name. Plain http:// is refused except for loopback hosts
//     (localhost, 127.0.0.0/8, ::1), which tests use. HF_TOKEN is never sent
//     with these.
//
// Anything else given to [Resolve] is a local path and is returned as it is.
//
// # The cache
//
// [CacheDir] chooses the folder, first match wins:
//
//  1. $NERSTREAM_MODEL_DIR (what `demo` has always read);
//  2. $NERSTREAM_HOME/models;
//  3. $XDG_CACHE_HOME/nerstream/models (an absolute XDG_CACHE_HOME only);
//  4. the user cache folder (os.UserCacheDir: ~/.cache on Linux)
//     /nerstream/models.
//
// The cache is flat: a model is kept as {cache}/{FILE}, its file name only,
// whatever its source, so that the default model is
// {cache}/UniNER-7B-type.Q4_K_M.gguf, where `demo` looks for it, and a file
// copied into the cache by hand is used as it is. Two sources with the same
// file name therefore share one cache entry: the first one pulled stays until
// it is removed or pulled again with [Options.Force]. A download in progress
// is {cache}/{FILE}.part; it is renamed to {FILE} only once it is complete
// and verified, after an fsync, so that the final path never holds part of a
// model. Two processes pulling the same file at the same time are not
// coordinated; do not do that.
//
// # Downloads
//
//   - Resuming: an interrupted download leaves its .part file, and the next
//     attempt asks for the rest with "Range: bytes=N-". A server that
//     answers 200 instead of 206 sends the whole file, which replaces the
//     partial one; a 416 means the partial file is already complete (when its
//     size is the total the server gives) or is dropped and the download
//     starts over. Within one [Pull], a download that breaks off after
//     receiving data is resumed at once, up to [Options.Attempts] times;
//     a cancelled context leaves the .part file for the next pull.
//   - Checking: the first four bytes must be the GGUF magic; anything else
//     (an HTML error page, say) stops the download at once and deletes the
//     partial file.
//   - Verifying: the SHA-256 of the whole file is compared with
//     [Options.SHA256] when given, else with the digest in the server's
//     X-Linked-Etag or ETag header when that is 64 hex digits (Hugging Face
//     sends the SHA-256 of LFS files there; the X-Linked-Etag of a
//     redirect counts). A mismatch deletes the partial file. With no digest
//     the file is kept and reported "not verified: the server gave no
//     SHA-256", unless [Options.RequireSHA256].
//   - Progress: a bar redrawn in place when [Options.Bar] (the CLI sets it
//     when stderr is a terminal, see [IsTerminal]); otherwise one line at
//     the end, on success.
//
// Errors are one line each: "not found: URL" (HTTP 404, [ErrNotFound]);
// "access denied (HTTP 401|403): URL: …" naming HF_TOKEN
// ([ErrAccessDenied]); "SHA-256 mismatch: got X, want Y" ([ErrChecksum]);
// "not a GGUF file: …" ([ErrNotGGUF]); "bad model reference …"
// ([ErrBadRef]).
//
// # The default model
//
// [DefaultModelRef] is UniNER-7B-type (Zhou et al., 2023) quantised to
// Q4_K_M, from a public community GGUF conversion. The reference could not
// be checked from the sandbox this package was written in; if it moves,
// pass another reference or put the file in the cache by hand. UniNER's
// weights are released under CC BY-NC 4.0 (attribution, non-commercial use
// only), on top of the LLaMA-1 licence of the base model; pulling them is
// accepting those terms.
//
// The package uses the standard library and model/gguf only.
package hub
