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
// # Bare names
//
// A file name alone, with no folder ("UniNER-7B-type.Q4_K_M.gguf",
// [IsBareName]), is what a user writes for a model they have: [Find]
// returns the working folder's file of that name when there is one, else
// the cache's one model of that name, put in the cache folder by hand
// ({cache}/NAME) or pulled from any source. Several is [ErrAmbiguous] (the
// name cannot choose a source), none a [*NotCachedError] whose message
// says which `nerstream model pull` fetches it ([DefaultModelRef] for the
// default model's file name). Keying the cache by source is unaffected: a
// reference is never satisfied by a file pulled from elsewhere.
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
// The cache is keyed by source, so that a model is found only under the
// address it was pulled from. A file of the same name pulled from
// anywhere else is another entry, and never becomes the model of a
// reference that did not name its source ([Ref.CachePath]):
//
//	hf://OWNER/REPO/FILE@REV     {cache}/hf/OWNER/REPO/REV/FILE
//	https://HOST/…/NAME.gguf     {cache}/url/HOST/KEY/NAME.gguf
//
// REV and FILE are escaped as one path element each (refs/pr/1 is
// refs%2Fpr%2F1, sub/m.gguf is sub%2Fm.gguf), so no two sources share a
// path; an hf:// reference without @REV is REV main. KEY is the first 32
// hex digits of the SHA-256 of the address without its query and
// fragment ([Ref.Source]): a presigned address signed again is the same
// model, the same path on another host or port is not. The default model
// is therefore {cache}/hf/mradermacher/UniNER-7B-type-GGUF/main/
// UniNER-7B-type.Q4_K_M.gguf.
//
// Beside each model lies its manifest, {FILE}.manifest.json: the source,
// the size and the SHA-256 computed while the file was downloaded,
// whether that digest was verified and against what, and the file's
// modification time. A download in progress is {FILE}.part; once it is
// complete and verified it is fsynced, its manifest is written, and it is
// renamed to {FILE}, so that the final path never holds part of a model
// and never lacks its manifest. Two processes pulling the same model at
// the same time are not coordinated; do not do that.
//
// # Verifying the cache
//
// A cached model is checked against its manifest before it is used:
//
//   - [Resolve], on every load (run, demo, annotate, serve…), compares the
//     file's size and modification time with the manifest's. When both
//     match, the file is used without reading it: hashing it would cost
//     every start seconds before llama.cpp reads the file again (SHA-256
//     ran at about 0.6 GB/s on the machine this was written on, SHA
//     instructions and all: 6 s for the 3.8 GiB of the default model, 11 s
//     for a Q8_0). When the time differs, the file is hashed in full; a
//     digest that matches records the new time (a copy or a touch costs
//     one hash), one that differs, like a size that differs, is
//     [ErrCorrupt].
//   - [Pull] (nerstream model pull) hashes a cached model in full every
//     time, whatever its size and time: that is the command to re-check
//     the cache after a disk fault, since a change that keeps size and
//     time (bit rot, a write followed by a reset of the time) passes the
//     load-time check.
//
// A model that fails its check, has no readable manifest, or was pulled
// from another source than its path says, is reported on
// [Options.Progress] and downloaded again.
//
// Caches of earlier versions were flat, {cache}/{FILE}, keyed by the file
// name alone, and recorded no source and no digest. Such files cannot be
// told apart from a file pulled from anywhere, so they are not migrated:
// they are left where they are, unused, the first pull of a reference
// downloads its model into the new layout, and a pull says when a
// flat-layout file of the same name is there ("note: … is in the cache's
// old flat layout"). Delete them, or give one's path as the model to use
// it as a local file.
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
//   - Limiting: a model larger than [Options.MaxBytes] ([DefaultMaxBytes],
//     32 GiB) is refused from its Content-Length (or Content-Range total)
//     before its body is read, and a body that grows past the limit
//     without saying so is cut off there; the partial download is deleted
//     ([ErrTooBig]).
//   - The token: HF_TOKEN goes to the first request only, and to redirects
//     that stay at its origin (scheme, host and port). A redirect that
//     leaves it (Hugging Face sends LFS files from a CDN, with a presigned
//     address) loses the Authorization header, for the rest of the chain.
//     net/http alone compares host names only, and would send the token to
//     another port of the same host, or to a subdomain.
//   - Progress: a bar redrawn in place when [Options.Bar] (the CLI sets it
//     when stderr is a terminal, see [IsTerminal]); otherwise one line at
//     the end, on success.
//
// Addresses are shown redacted (internal/redact) in every error and
// progress line: a presigned address's query values (X-Amz-Signature=…,
// sig=…) become REDACTED; an hf:// reference holds no secret.
//
// Errors are one line each: "not found: URL" (HTTP 404, [ErrNotFound]);
// "access denied (HTTP 401|403): URL: …" naming HF_TOKEN
// ([ErrAccessDenied]); "SHA-256 mismatch: got X, want Y" ([ErrChecksum]);
// "not a GGUF file: …" ([ErrNotGGUF]); "model too big: …" ([ErrTooBig]);
// "bad model reference …" ([ErrBadRef]).
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
// The package uses the standard library, model/gguf and internal/redact
// (itself the standard library only).
package hub
