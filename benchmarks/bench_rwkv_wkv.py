"""RWKV-4 training-step throughput with three WKV implementations, measured side by side.

* chunked: the parallel form inside chunks of 16 tokens plus a scan across chunks (our default);
* loop: the step-by-step stable recurrence in Python (what other CPU implementations do);
* identity: WKV replaced by v (not a language model: the ceiling for any WKV implementation).

One Adam step each, interleaved round by round so machine load hits all variants alike; the
ratios are the claims. Also the kernel-side update times of notebook 06's two slider demos.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from course_lib.demos.rwkv_build import DecayDemo, InitScaleDemo
from course_lib.rwkv.model import (
    DEFAULT_CHUNK,
    RWKV,
    RWKVConfig,
    markov_tokens,
    wkv_chunked,
    wkv_recurrent,
)

FORMS = {"chunked": "chunked", "loop": "recurrent", "identity": "identity"}


def _step_fn(form: str, V: int, L: int, C: int, B: int, T: int, seed: int = 0):
    model = RWKV(RWKVConfig(V, L, C, ctx_len=T, wkv=form), seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, V, (B, T + 1), generator=g)

    def step() -> float:
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return time.perf_counter() - t0

    return step


def _wkv_sweep(B: int, T: int, C: int, rounds: int, chunks: tuple[int, ...]) -> dict[str, float]:
    """Median seconds of WKV alone (forward + backward) for the loop and each chunk length."""
    g = torch.Generator().manual_seed(0)
    k, v = (torch.randn(B, T, C, generator=g).requires_grad_() for _ in range(2))
    w = (-torch.exp(torch.randn(C, generator=g))).requires_grad_()
    u = torch.randn(C, generator=g).requires_grad_()
    fns = {"loop": lambda: wkv_recurrent(w, u, k, v)}
    for q in chunks:
        fns[f"Q={q}"] = lambda q=q: wkv_chunked(w, u, k, v, chunk=q)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn().sum().backward()
            if r:  # round 0 is the warm-up
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _slider_ms(demo, name: str, values: list) -> float:
    times = []
    for v in values:
        demo.controls[name].value = v
        times.append(demo.last_update_s)
    return 1e3 * statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    torch.set_flush_denormal(True)
    V, L, C, B, T, rounds = (77, 2, 64, 8, 64, 3) if quick else (77, 4, 128, 16, 128, 5)
    steps = {name: _step_fn(form, V, L, C, B, T) for name, form in FORMS.items()}
    for fn in steps.values():  # warm-up
        fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            times[name].append(fn())
    tok_s = {name: B * T / statistics.median(ts) for name, ts in times.items()}
    shape = f"L{L}-C{C}, batch {B}x{T}, fp32, {torch.get_num_threads()} thread(s)"
    rows = [
        {
            "name": f"rwkv train tok/s ({name})",
            "value": tok_s[name],
            "unit": "tok/s",
            "note": f"median of {rounds} Adam steps, {shape}",
        }
        for name in steps
    ]
    rows += [
        {
            "name": "rwkv chunked / loop WKV",
            "value": tok_s["chunked"] / tok_s["loop"],
            "unit": "x",
            "note": "training-step speed-up of the chunked WKV over the Python loop",
        },
        {
            "name": "rwkv chunked / identity WKV",
            "value": tok_s["chunked"] / tok_s["identity"],
            "unit": "x",
            "note": "fraction of the no-WKV ceiling reached by the chunked WKV",
        },
        {
            "name": "rwkv loop / identity WKV",
            "value": tok_s["loop"] / tok_s["identity"],
            "unit": "x",
            "note": "fraction of the no-WKV ceiling reached by the Python loop",
        },
    ]
    sweep = _wkv_sweep(B, T, C, rounds, (2, 4, 8, 16))
    for name, sec in sweep.items():
        if name != "loop":
            rows.append(
                {
                    "name": f"rwkv WKV fwd+bwd loop / chunked {name}",
                    "unit": "x",
                    "value": sweep["loop"] / sec,
                    "note": f"WKV alone, B{B} T{T} C{C}; default chunk is {DEFAULT_CHUNK}",
                }
            )
    decay = DecayDemo()
    rows.append(
        {
            "name": "nb06 decay slider update",
            "unit": "ms",
            "value": _slider_ms(decay, "time_decay", [-4.0, -2.0, 0.0, 1.0, 2.5, -1.0]),
            "note": "DecayDemo, median kernel-side update (attention matrix T=32)",
        }
    )
    toks, _ = markov_tokens(16, 4000, 0)
    t0 = time.perf_counter()
    init = InitScaleDemo(toks, RWKVConfig(16, 1, 32, ctx_len=16), steps=10 if quick else 30)
    build_s = time.perf_counter() - t0
    rows.append(
        {
            "name": "nb06 init-scale slider update",
            "unit": "ms",
            "value": _slider_ms(init, "emb_scale", [1.0, 1e-2, 1e-6, 1e-4]),
            "note": "InitScaleDemo, median update (curves precomputed on the slider grid)",
        }
    )
    rows.append(
        {
            "name": "nb06 init-scale grid precompute",
            "unit": "s",
            "value": build_s,
            "note": "InitScaleDemo construction: 7 grid scales + default init",
        }
    )
    return rows
