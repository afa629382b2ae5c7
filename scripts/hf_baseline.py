#!/usr/bin/env python3
"""The Hugging Face baseline of `nerstream bench engine`, for a GPU machine.

Runs a LlamaForCausalLM of UniNER's 7B shape (LLaMA-7B: 32 layers, width 4096,
32 heads, feed-forward 11008, 32,000 tokens) with random weights in fp16 on the
GPU, on exactly the prompts that `nerstream bench engine --prompts-out FILE`
wrote (token ids from nerstream's tokenizer, BOS included), greedy, with the
same cap on new tokens, in two ways:

  (a) one query at a time, as UniNER's official HF inference does
      (one generate call per entity type per passage);
  (b) batched generate: every query of --batch-docs documents in one call,
      left-padded.

It prints, and writes to --out, the documents per second of each. Nothing is
downloaded: the weights are random, so the figures are of speed only. Needs
PyTorch and transformers (the GPU machine has both); --dry-run checks the
prompts file and prints the plan without them.

  scripts/hf_baseline.py --prompts prompts.jsonl [--one-at-a-time-docs 8]
                         [--batch-docs 8] [--out hf.json] [--dry-run]
"""

import argparse
import json
import sys
import time


def load_prompts(path):
    """Returns the documents, in order, each a list of (type, ids), and the cap
    on new tokens; exits with one line on a malformed file."""
    docs, cap = {}, None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                p = json.loads(line)
                doc, typ, ids, mnt = p["doc"], p["type"], p["ids"], p["max_new_tokens"]
                if not (isinstance(doc, int) and isinstance(typ, str) and isinstance(mnt, int) and mnt > 0):
                    raise ValueError("doc, type or max_new_tokens of the wrong kind")
                if not ids or not all(isinstance(i, int) and 0 <= i < 32000 for i in ids):
                    raise ValueError("ids must be token ids of LLaMA's 32,000")
            except (ValueError, KeyError, TypeError) as e:
                sys.exit(f"hf_baseline: {path}:{n}: {e}")
            if cap is not None and mnt != cap:
                sys.exit(f"hf_baseline: {path}:{n}: max_new_tokens {mnt}, earlier lines {cap}")
            cap = mnt
            docs.setdefault(doc, []).append((typ, ids))
    if not docs:
        sys.exit(f"hf_baseline: {path} holds no prompts")
    return [docs[d] for d in sorted(docs)], cap


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", required=True, help="JSON lines of `nerstream bench engine --prompts-out`")
    ap.add_argument("--one-at-a-time-docs", type=int, default=8,
                    help="documents answered one query at a time (the slow path; the rate is per document)")
    ap.add_argument("--batch-docs", type=int, default=8, help="documents per batched generate call")
    ap.add_argument("--out", help="write the figures here as JSON")
    ap.add_argument("--dry-run", action="store_true", help="check the prompts and print the plan; no PyTorch")
    a = ap.parse_args()
    if a.one_at_a_time_docs <= 0 or a.batch_docs <= 0:
        sys.exit("hf_baseline: --one-at-a-time-docs and --batch-docs must be > 0")
    docs, cap = load_prompts(a.prompts)
    plan = {
        "docs": len(docs),
        "prompts": sum(len(d) for d in docs),
        "max_new_tokens": cap,
        "one_at_a_time_docs": min(a.one_at_a_time_docs, len(docs)),
        "batched_calls": (len(docs) + a.batch_docs - 1) // a.batch_docs,
        "longest_prompt": max(len(ids) for d in docs for _, ids in d),
    }
    if a.dry_run:
        print(json.dumps(plan))
        return

    try:
        import torch
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as e:
        sys.exit(f"hf_baseline: needs PyTorch and transformers (the GPU machine has both): {e}")

    if not torch.cuda.is_available():
        sys.exit("hf_baseline: no CUDA device")
    config = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                         rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    start = time.perf_counter()
    torch.set_default_dtype(torch.float16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    model.eval()
    torch.cuda.synchronize()
    load_s = time.perf_counter() - start
    gen = dict(max_new_tokens=cap, do_sample=False, pad_token_id=0, eos_token_id=2)

    def generate(batch):
        """Greedy answers to a list of prompts in one call, left-padded; returns
        the new tokens generated."""
        width = max(len(ids) for ids in batch)
        ids = torch.tensor([[0] * (width - len(p)) + p for p in batch], device="cuda")
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device="cuda")
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, **gen)
        new = out[:, width:]
        # Tokens up to and including the first EOS, or all of them.
        count = 0
        for row in new.tolist():
            count += row.index(2) + 1 if 2 in row else len(row)
        return count

    generate([docs[0][0][1]])  # warm-up: kernels, allocator
    torch.cuda.synchronize()

    one = docs[:plan["one_at_a_time_docs"]]
    start, one_tokens = time.perf_counter(), 0
    for d in one:
        for _, ids in d:
            one_tokens += generate([ids])
    torch.cuda.synchronize()
    one_s = time.perf_counter() - start

    start, batch_tokens = time.perf_counter(), 0
    for i in range(0, len(docs), a.batch_docs):
        batch_tokens += generate([ids for d in docs[i:i + a.batch_docs] for _, ids in d])
    torch.cuda.synchronize()
    batch_s = time.perf_counter() - start

    res = dict(plan,
               model="random-weight LlamaForCausalLM, LLaMA-7B shape, fp16",
               gpu=torch.cuda.get_device_name(0), torch=torch.__version__, transformers=transformers.__version__,
               load_s=load_s,
               one_at_a_time_docs_per_s=len(one) / one_s,
               one_at_a_time_generated_tokens=one_tokens,
               batched_docs_per_s=len(docs) / batch_s,
               batched_generated_tokens=batch_tokens,
               batch_docs=a.batch_docs)
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
