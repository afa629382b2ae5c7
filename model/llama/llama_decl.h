// The subset of llama.h (llama.cpp commit ec98e2002, vendored in
// github.com/ollama/ollama v0.24.0) that nerstream's binding uses.
//
// The real header lives in another module, whose directory cgo cannot name,
// so the declarations are restated here. layout_test.go checks them against
// the real headers of the pinned module, so that a version bump that
// changes them fails loudly:
//   - it compiles a program against both headers and compares sizeof and
//     offsetof of every struct below;
//   - it compiles the real headers followed by every prototype below,
//     with -Werror: C refuses a redeclaration of another type; and it
//     asserts that every typedef below is compatible with the real one;
//   - it asserts (_Static_assert) that every NERSTREAM_ constant below
//     equals the real enumerator of the same name without the prefix.
//
// Struct fields of enum type are declared as int, which has the size and
// alignment C gives an enum.
#ifndef NERSTREAM_LLAMA_DECL_H
#define NERSTREAM_LLAMA_DECL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int32_t llama_pos;
typedef int32_t llama_token;
typedef int32_t llama_seq_id;

struct llama_model;
struct llama_context;
struct llama_vocab;
struct llama_sampler;
typedef struct llama_memory_i * llama_memory_t;
typedef struct ggml_backend_reg * ggml_backend_reg_t;
typedef struct ggml_backend_device * ggml_backend_dev_t;

// level is an enum ggml_log_level. C gives an enum without negative values
// the type unsigned int (GCC and Clang), and the prototype check refuses int.
typedef void (*ggml_log_callback)(unsigned int level, const char * text, void * user_data);

// Enumerators the binding writes or compares, by the real name with the
// NERSTREAM_ prefix.
#define NERSTREAM_GGML_TYPE_F32 0                  // enum ggml_type
#define NERSTREAM_LLAMA_FLASH_ATTN_TYPE_DISABLED 0 // enum llama_flash_attn_type
#define NERSTREAM_GGML_LOG_LEVEL_DEBUG 1           // enum ggml_log_level
#define NERSTREAM_GGML_LOG_LEVEL_INFO 2
#define NERSTREAM_GGML_LOG_LEVEL_WARN 3
#define NERSTREAM_GGML_LOG_LEVEL_ERROR 4
#define NERSTREAM_GGML_LOG_LEVEL_CONT 5
#define NERSTREAM_GGML_BACKEND_DEVICE_TYPE_CPU 0   // enum ggml_backend_dev_type
#define NERSTREAM_GGML_BACKEND_DEVICE_TYPE_GPU 1
#define NERSTREAM_GGML_BACKEND_DEVICE_TYPE_IGPU 2
#define NERSTREAM_GGML_BACKEND_DEVICE_TYPE_ACCEL 3

struct llama_model_params {
    void *        devices;               // ggml_backend_dev_t *
    const void *  tensor_buft_overrides; // const struct llama_model_tensor_buft_override *
    int32_t       n_gpu_layers;
    int           split_mode;            // enum llama_split_mode
    int32_t       main_gpu;
    const float * tensor_split;
    void *        progress_callback;     // llama_progress_callback
    void *        progress_callback_user_data;
    const void *  kv_overrides;          // const struct llama_model_kv_override *
    bool vocab_only;
    bool use_mmap;
    bool use_mlock;
    bool check_tensors;
    bool use_extra_bufts;
    bool no_host;
    bool no_alloc;
};

struct llama_context_params {
    uint32_t n_ctx;
    uint32_t n_batch;
    uint32_t n_ubatch;
    uint32_t n_seq_max;
    int32_t  n_threads;
    int32_t  n_threads_batch;
    int      rope_scaling_type; // enum llama_rope_scaling_type
    int      pooling_type;      // enum llama_pooling_type
    int      attention_type;    // enum llama_attention_type
    int      flash_attn_type;   // enum llama_flash_attn_type
    float    rope_freq_base;
    float    rope_freq_scale;
    float    yarn_ext_factor;
    float    yarn_attn_factor;
    float    yarn_beta_fast;
    float    yarn_beta_slow;
    uint32_t yarn_orig_ctx;
    float    defrag_thold;
    void *   cb_eval;           // ggml_backend_sched_eval_callback
    void *   cb_eval_user_data;
    int      type_k;            // enum ggml_type
    int      type_v;            // enum ggml_type
    void *   abort_callback;    // ggml_abort_callback
    void *   abort_callback_data;
    bool embeddings;
    bool offload_kqv;
    bool no_perf;
    bool op_offload;
    bool swa_full;
    bool kv_unified;
};

typedef struct llama_batch {
    int32_t        n_tokens;
    llama_token *  token;
    float *        embd;
    llama_pos *    pos;
    int32_t *      n_seq_id;
    llama_seq_id ** seq_id;
    int8_t *       logits;
} llama_batch;

typedef struct llama_token_data {
    llama_token id;
    float logit;
    float p;
} llama_token_data;

typedef struct llama_token_data_array {
    llama_token_data * data;
    size_t size;
    int64_t selected;
    bool sorted;
} llama_token_data_array;

struct llama_model_params   llama_model_default_params(void);
struct llama_context_params llama_context_default_params(void);

void llama_backend_init(void);
void llama_log_set(ggml_log_callback log_callback, void * user_data);
void ggml_log_set(ggml_log_callback log_callback, void * user_data);
bool llama_supports_gpu_offload(void);
const char * llama_print_system_info(void);

struct llama_model * llama_model_load_from_file(const char * path_model, struct llama_model_params params);
void llama_model_free(struct llama_model * model);
struct llama_context * llama_init_from_model(struct llama_model * model, struct llama_context_params params);
void llama_free(struct llama_context * ctx);

uint32_t llama_n_ctx(const struct llama_context * ctx);
// ggml-cpu.h: what the CPU backend was compiled with (1 or 0).
int ggml_cpu_has_avx(void);
int ggml_cpu_has_avx2(void);
int ggml_cpu_has_fma(void);
int ggml_cpu_has_f16c(void);
int ggml_cpu_has_avx512(void);
void llama_set_n_threads(struct llama_context * ctx, int32_t n_threads, int32_t n_threads_batch);
llama_memory_t llama_get_memory(const struct llama_context * ctx);
const struct llama_vocab * llama_model_get_vocab(const struct llama_model * model);
int32_t llama_model_n_ctx_train(const struct llama_model * model);
int32_t llama_model_n_embd(const struct llama_model * model);
int32_t llama_model_n_layer(const struct llama_model * model);
uint64_t llama_model_size(const struct llama_model * model);

int32_t llama_vocab_n_tokens(const struct llama_vocab * vocab);
bool    llama_vocab_is_eog(const struct llama_vocab * vocab, llama_token token);
llama_token llama_vocab_bos(const struct llama_vocab * vocab);
llama_token llama_vocab_eos(const struct llama_vocab * vocab);
bool    llama_vocab_get_add_bos(const struct llama_vocab * vocab);
const char * llama_vocab_get_text(const struct llama_vocab * vocab, llama_token token);

int32_t llama_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len,
                       llama_token * tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
int32_t llama_token_to_piece(const struct llama_vocab * vocab, llama_token token, char * buf,
                             int32_t length, int32_t lstrip, bool special);

bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1);
void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1);

llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
void llama_batch_free(llama_batch batch);
int32_t llama_decode(struct llama_context * ctx, llama_batch batch);
float * llama_get_logits_ith(struct llama_context * ctx, int32_t i);

struct llama_sampler * llama_sampler_init_grammar(const struct llama_vocab * vocab, const char * grammar_str, const char * grammar_root);
struct llama_sampler * llama_sampler_clone(const struct llama_sampler * smpl);
void llama_sampler_accept(struct llama_sampler * smpl, llama_token token);
void llama_sampler_apply(struct llama_sampler * smpl, llama_token_data_array * cur_p);
void llama_sampler_free(struct llama_sampler * smpl);

// ggml's backend registry (ggml-backend.h): loading GPU backend modules
// and listing the devices. ggml_backend_dev_type returns an enum
// ggml_backend_dev_type, unsigned int to C (see ggml_log_callback).
ggml_backend_reg_t ggml_backend_load(const char * path);
const char * ggml_backend_reg_name(ggml_backend_reg_t reg);
size_t ggml_backend_dev_count(void);
ggml_backend_dev_t ggml_backend_dev_get(size_t index);
const char * ggml_backend_dev_name(ggml_backend_dev_t device);
const char * ggml_backend_dev_description(ggml_backend_dev_t device);
void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t * free, size_t * total);
unsigned int ggml_backend_dev_type(ggml_backend_dev_t device);
ggml_backend_reg_t ggml_backend_dev_backend_reg(ggml_backend_dev_t device);

// Defined in helpers.c.
void nerstream_route_logs(void);

#endif
