// C helpers of the binding: what cgo's preamble cannot define because the
// package exports Go functions to C.
#include "llama_decl.h"
#include "_cgo_export.h"

// nerstream_route_logs sends llama.cpp's and ggml's logs to Go (nerstreamLog).
void nerstream_route_logs(void) {
    llama_log_set((ggml_log_callback)nerstreamLog, NULL);
    ggml_log_set((ggml_log_callback)nerstreamLog, NULL);
}

// nerstream_logsumexp returns log(sum(exp(l[i]))) over n logits, the
// log-softmax's normaliser (scores, issue 19). It runs once per generated
// token over the whole vocabulary, so it is vectorised: on AVX2 with FMA
// (make build's x86-64-v3) eight lanes at a time, exp by Cephes' expf
// polynomial (relative error about 1e-7), summed in double.
#include <math.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

static inline __m256 nerstream_exp8(__m256 x) {
    // exp(x) for x <= 0: x = n ln2 + r, exp(x) = 2^n exp(r).
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 r2 = _mm256_mul_ps(r, r);
    p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

double nerstream_logsumexp(const float *l, int n) {
    if (n <= 0) {
        return -INFINITY;
    }
    float m = l[0];
    int j = 1;
#if defined(__AVX2__) && defined(__FMA__)
    if (n >= 8) {
        __m256 vmax = _mm256_loadu_ps(l);
        for (j = 8; j + 8 <= n; j += 8) {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(l + j));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, vmax);
        for (int k = 0; k < 8; k++) {
            m = lanes[k] > m ? lanes[k] : m;
        }
    }
#endif
    for (; j < n; j++) {
        m = l[j] > m ? l[j] : m;
    }
    if (isinf(m) || isnan(m)) {
        return m;
    }
    double sum = 0;
    int i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 vm = _mm256_set1_ps(m);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        __m256 e = nerstream_exp8(_mm256_sub_ps(_mm256_loadu_ps(l + i), vm));
        lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double acc[4];
    _mm256_storeu_pd(acc, _mm256_add_pd(lo, hi));
    sum = acc[0] + acc[1] + acc[2] + acc[3];
#endif
    for (; i < n; i++) {
        sum += exp((double)(l[i] - m));
    }
    return (double)m + log(sum);
}
