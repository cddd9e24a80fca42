"""Notebook 07 benchmarks: training throughput, what a longer budget reaches, decoding cost.

Rows: RWKV-4 and GPT training throughput (tok/s) and their ratio measured side by side; the
validation loss RWKV-4 L4-C128 reaches after a longer step budget than the notebook's (quick: a
shorter one); per-token decode CPU time at a short and a long context for both models and the
long/short ratios; the kernel-side update time of the sampling panel (median of 3 updates).
"""

from __future__ import annotations

import statistics
import time

import torch

from course_lib.demos.rwkv_train import SampleDemo
from course_lib.rwkv import RWKV, RWKVConfig
from course_lib.rwkv.data import load_corpus
from course_lib.rwkv.gpt import GPT, GPTConfig
from course_lib.rwkv.train import TrainConfig, decode_profile, evaluate, train


def run(quick: bool = False) -> list[dict]:
    torch.set_flush_denormal(True)
    corpus = load_corpus()
    V = corpus.vocab.size
    rows: list[dict] = []

    # throughput, side by side (same batch 8 x 128, same thread count)
    steps = 10 if quick else 40
    tps = {}
    for name, model in [("rwkv", RWKV(RWKVConfig(V))), ("gpt", GPT(GPTConfig(V)))]:
        cfg = TrainConfig(
            batch_size=8, ctx_len=128, max_steps=steps, eval_every=10**6, eval_windows=1
        )
        tps[name] = train(model, corpus.train, corpus.val, cfg, progress=False).tokens_per_s
        rows.append(
            {
                "name": f"{name}_train_tokens_per_s",
                "value": tps[name],
                "unit": "tok/s",
                "note": f"L4-C128, batch 8x128, {torch.get_num_threads()} thread(s)",
            }
        )
    rows.append(
        {
            "name": "gpt_vs_rwkv_train_speed",
            "value": tps["gpt"] / tps["rwkv"],
            "unit": "x",
            "note": "GPT tok/s over RWKV tok/s, same run",
        }
    )

    # what a longer budget reaches (the notebook uses 300 steps)
    long_steps = 100 if quick else 1200
    rwkv = RWKV(RWKVConfig(V))
    cfg = TrainConfig(
        batch_size=8, ctx_len=128, max_steps=long_steps, eval_every=10**6, eval_windows=1
    )
    res = train(rwkv, corpus.train, corpus.val, cfg, progress=not quick, desc="RWKV long")
    rows.append(
        {
            "name": f"rwkv_val_loss_{long_steps}_steps",
            "value": evaluate(rwkv, corpus.val, 128, 256),
            "unit": "nats/char",
            "note": f"{res.tokens:,} characters in {res.train_seconds:.0f} s",
        }
    )

    # decoding: CPU time per token, short vs long context
    contexts = [64, 1024] if quick else [64, 4096]
    prof = {
        "rwkv": decode_profile(rwkv, contexts, n_steps=32),
        "gpt": decode_profile(GPT(GPTConfig(V, ctx_len=contexts[-1] + 32)), contexts, n_steps=32),
    }
    for name, p in prof.items():
        for c, ms in zip(contexts, p["ms_per_token"]):
            rows.append(
                {
                    "name": f"{name}_decode_ms_ctx{c}",
                    "value": ms,
                    "unit": "ms",
                    "note": "median CPU time per token, 1 thread",
                }
            )
        rows.append(
            {
                "name": f"{name}_decode_long_vs_short",
                "value": p["ms_per_token"][-1] / p["ms_per_token"][0],
                "unit": "x",
                "note": f"ms/token at {contexts[-1]} over {contexts[0]} tokens",
            }
        )

    # the sampling panel (2 models x 100 characters)
    demo = SampleDemo({"before": RWKV(RWKVConfig(V)), "after": rwkv}, corpus.vocab, n_chars=100)
    times = []
    for t in (0.5, 1.0, 1.5):
        t0 = time.perf_counter()
        demo.controls["temperature"].value = t
        times.append(time.perf_counter() - t0)
    rows.append(
        {
            "name": "sample_panel_update_ms",
            "value": 1e3 * statistics.median(times),
            "unit": "ms",
            "note": "2 models x 100 characters, RNN mode",
        }
    )
    return rows
