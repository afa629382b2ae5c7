// C helpers of the binding: what cgo's preamble cannot define because the
// package exports Go functions to C.
#include "llama_decl.h"
#include "_cgo_export.h"

// nerstream_route_logs sends llama.cpp's and ggml's logs to Go (nerstreamLog).
void nerstream_route_logs(void) {
    llama_log_set((ggml_log_callback)nerstreamLog, NULL);
    ggml_log_set((ggml_log_callback)nerstreamLog, NULL);
}
