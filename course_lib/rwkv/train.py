"""A small, generic training loop for character language models (no plotting here).

It trains any ``nn.Module`` mapping token ids (B, T) to logits (B, T, V) — the RWKV and the GPT
baseline alike — by minimizing the mean next-token cross-entropy

    loss = −(1/BT) Σ_{b,t} log softmax(logits[b, t])[y[b, t]]      (nats per character)

with Adam/AdamW, a linear warmup followed by cosine decay to ``lr_min_ratio · lr``, gradient
clipping (global norm), periodic validation on a fixed set of windows, a tqdm progress bar, a
step budget and/or a time budget, and checkpoints holding everything needed to continue exactly:
model and optimizer states, the batch generator's state (the data position), torch's global RNG
state, the step count, elapsed time and the loss history. With a step budget the learning-rate
schedule is a function of the step, so an interrupted and resumed run is bit-identical to an
uninterrupted one; with a time budget it follows the elapsed training time (eval excluded).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_divergence, check_int, check_real
from .data import IGNORE_INDEX, eval_windows, get_batch

__all__ = [
    "TrainConfig",
    "History",
    "TrainResult",
    "lr_at",
    "evaluate",
    "train",
    "save_checkpoint",
    "load_checkpoint",
    "masked_accuracy",
    "decode_profile",
    "recall_probe",
]

#: A batch source: either a 1-D LongTensor token stream (random windows are drawn from it) or a
#: function ``generator -> (x, y)`` returning one (B, T) batch (synthetic tasks).
BatchSource = torch.Tensor | Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
#: Validation data: a token stream (evenly spaced windows) or a fixed (x, y) pair.
ValSource = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class TrainConfig:
    """Optimization settings (validated on construction).

    ``max_steps`` and ``time_budget_s`` (seconds of optimization, evaluation excluded) bound the
    run; at least one must be set. ``eval_every`` steps the loss on ``eval_windows`` fixed
    validation windows is recorded.
    """

    batch_size: int = 16
    ctx_len: int = 128
    lr: float = 2e-3
    lr_min_ratio: float = 0.1
    warmup_steps: int = 20
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_steps: int | None = None
    time_budget_s: float | None = None
    eval_every: int = 50
    eval_windows: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        self.batch_size = check_int("batch_size", self.batch_size, 1, 65_536)
        self.ctx_len = check_int("ctx_len", self.ctx_len, 1, 1_000_000)
        self.lr = check_real("lr", self.lr, 0.0, 1.0, low_open=True)
        self.lr_min_ratio = check_real("lr_min_ratio", self.lr_min_ratio, 0.0, 1.0)
        self.warmup_steps = check_int("warmup_steps", self.warmup_steps, 0)
        self.betas = (
            check_real("betas[0]", self.betas[0], 0.0, 1.0, high_open=True),
            check_real("betas[1]", self.betas[1], 0.0, 1.0, high_open=True),
        )
        self.weight_decay = check_real("weight_decay", self.weight_decay, 0.0, 1.0)
        self.grad_clip = check_real("grad_clip", self.grad_clip, 0.0, low_open=True)
        if self.max_steps is None and self.time_budget_s is None:
            raise ValueError("max_steps or time_budget_s must be set (got both None)")
        if self.max_steps is not None:
            self.max_steps = check_int("max_steps", self.max_steps, 1)
        if self.time_budget_s is not None:
            self.time_budget_s = check_real("time_budget_s", self.time_budget_s, 0.0, low_open=True)
        self.eval_every = check_int("eval_every", self.eval_every, 1)
        self.eval_windows = check_int("eval_windows", self.eval_windows, 1)
        self.seed = check_int("seed", self.seed, 0, 2**63 - 1)


@dataclass
class History:
    """Loss curves: train loss per step, validation loss at evaluation steps (nats/char)."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_time_s: list[float] = field(default_factory=list)


@dataclass
class TrainResult:
    """What :func:`train` returns: the history and the throughput of the run."""

    history: History
    steps: int
    tokens: int
    train_seconds: float
    tokens_per_s: float
    final_val_loss: float


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Learning rate at ``step``: linear warmup over ``warmup_steps``, then cosine decay from
    ``lr`` to ``lr_min_ratio·lr`` as ``progress`` goes from 0 to 1."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    lo = config.lr * config.lr_min_ratio
    return lo + 0.5 * (config.lr - lo) * (1.0 + math.cos(math.pi * p))


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1), ignore_index=IGNORE_INDEX
    )


def _val_xy(data: ValSource, ctx_len: int, n_windows: int) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, tuple):
        return data
    return eval_windows(data, ctx_len, n_windows)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: ValSource, ctx_len: int, n_windows: int, batch_size: int = 16
) -> float:
    """Mean next-token cross-entropy (nats/token) on ``n_windows`` evenly spaced windows of a
    token stream, or on a fixed ``(x, y)`` pair (labels ``IGNORE_INDEX`` are skipped)."""
    x, y = _val_xy(data, ctx_len, n_windows)
    batch_size = check_int("batch_size", batch_size, 1)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    try:
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            n = int((yb != IGNORE_INDEX).sum())
            total += float(_loss(model, xb, yb)) * n
            count += n
    finally:
        model.train(was_training)
    return total / count


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_gen: torch.Generator,
    config: TrainConfig,
    step: int,
    elapsed: float,
    history: History,
) -> Path:
    """Write everything needed to continue a run exactly (atomic replace)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "batch_gen": batch_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "config": asdict(config),
        "step": step,
        "elapsed": elapsed,
        "history": asdict(history),
    }
    tmp = p.with_name(p.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, p)
    return p


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path must be an existing checkpoint file, got {os.fspath(path)!r}")
    return torch.load(p, map_location="cpu", weights_only=False)


def train(
    model: nn.Module,
    train_data: BatchSource,
    val_data: ValSource,
    config: TrainConfig,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    callback: Callable[[History], None] | None = None,
    progress: bool | str = True,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` in place on random windows of ``train_data`` (or on the batches a
    ``train_data(generator)`` function returns) and return a :class:`TrainResult`.

    ``checkpoint_path`` + ``checkpoint_every`` save a checkpoint every so many steps and at the
    end; ``resume=True`` continues from that file when it exists (same config). ``callback``
    receives the history after each evaluation (for a live plot). ``progress``: True for a tqdm
    bar, False for none. A non-finite or exploding loss raises ``DivergenceError``.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    for name, d in (("train_data", train_data), ("val_data", val_data)):
        if callable(d) and name == "train_data" or isinstance(d, tuple) and name == "val_data":
            continue
        if not isinstance(d, torch.Tensor) or d.dtype != torch.long or d.ndim != 1:
            raise ValueError(f"{name} must be a 1-D LongTensor of token ids")
        if d.numel() < config.ctx_len + 2:
            raise ValueError(
                f"{name} must hold more than ctx_len + 1 = {config.ctx_len + 1} "
                f"tokens, got {d.numel()}"
            )
    if checkpoint_every is not None:
        checkpoint_every = check_int("checkpoint_every", checkpoint_every, 1)
        if checkpoint_path is None:
            raise ValueError("checkpoint_every needs a checkpoint_path")
    device = next(model.parameters()).device
    opt = _make_optimizer(model, config)
    batch_gen = torch.Generator().manual_seed(config.seed)
    step, elapsed, history = 0, 0.0, History()
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        ck = load_checkpoint(checkpoint_path)
        if ck["config"] != asdict(config):
            raise ValueError("config must equal the checkpoint's config to resume exactly")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        batch_gen.set_state(ck["batch_gen"])
        torch.set_rng_state(ck["torch_rng"])
        step, elapsed, history = ck["step"], ck["elapsed"], History(**ck["history"])

    def done() -> bool:
        return (config.max_steps is not None and step >= config.max_steps) or (
            config.time_budget_s is not None and elapsed >= config.time_budget_s
        )

    def progress_frac() -> float:
        fracs = []
        if config.max_steps is not None:
            fracs.append(step / config.max_steps)
        if config.time_budget_s is not None:
            fracs.append(elapsed / config.time_budget_s)
        return max(fracs)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = config.max_steps if config.max_steps is not None else None
        bar = tqdm(total=total, initial=step, desc=desc, leave=False, mininterval=2.0)
    first_loss = history.train_loss[0] if history.train_loss else None
    tokens_start, elapsed_start = step, elapsed
    model.train()
    try:
        while not done():
            t0 = time.perf_counter()
            lr = lr_at(config, step, progress_frac())
            for group in opt.param_groups:
                group["lr"] = lr
            if callable(train_data):
                x, y = train_data(batch_gen)
            else:
                x, y = get_batch(train_data, config.batch_size, config.ctx_len, batch_gen)
            loss = _loss(model, x.to(device), y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            value = float(loss.detach())
            first_loss = value if first_loss is None else first_loss
            check_divergence(
                value, step, method=desc, step_size=lr, limit=1e3, reference=first_loss
            )
            step += 1
            elapsed += time.perf_counter() - t0
            history.step.append(step)
            history.train_loss.append(value)
            history.time_s.append(elapsed)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if step % config.eval_every == 0 or done():
                history.val_step.append(step)
                history.val_loss.append(
                    evaluate(model, val_data, config.ctx_len, config.eval_windows)
                )
                history.val_time_s.append(elapsed)
                if callback is not None:
                    callback(history)
            if checkpoint_every is not None and (step % checkpoint_every == 0 or done()):
                save_checkpoint(
                    checkpoint_path, model, opt, batch_gen, config, step, elapsed, history
                )
    finally:
        if bar is not None:
            bar.close()
    run_s = elapsed - elapsed_start
    tokens = (step - tokens_start) * config.batch_size * config.ctx_len
    return TrainResult(
        history,
        step,
        step * config.batch_size * config.ctx_len,
        elapsed,
        tokens / run_s if run_s > 0 else float("nan"),
        history.val_loss[-1] if history.val_loss else float("nan"),
    )


@torch.no_grad()
def masked_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of labelled positions (``y != IGNORE_INDEX``) where argmax logits equal ``y``."""
    was_training = model.training
    model.eval()
    try:
        pred = model(x.to(next(model.parameters()).device)).argmax(-1).cpu()
    finally:
        model.train(was_training)
    mask = y != IGNORE_INDEX
    if not bool(mask.any()):
        raise ValueError("y must contain at least one label other than IGNORE_INDEX")
    return float((pred[mask] == y[mask]).float().mean())


@torch.no_grad()
def decode_profile(
    model: nn.Module,
    contexts: list[int],
    *,
    n_steps: int = 16,
    vocab_size: int | None = None,
    seed: int = 0,
) -> dict[str, list[float]]:
    """Per-token decoding cost against context length, for any model with ``init_state``,
    ``forward(idx, state, return_state=True)``, ``forward_step`` and states with ``clone()``
    and ``nbytes`` (the RWKV's recurrent state, the GPT's KV cache).

    One state per context length n is built by parallel prefill of random tokens (each from a
    clone of the previous one). Then ``n_steps`` rounds time one single-token step of every
    state in turn (torch on one thread), so load from other processes hits all lengths alike.
    Returns ``context``, ``ms_per_token`` (median CPU time of the decoding thread per step:
    insensitive to other processes sharing the cores), ``wall_ms_per_token`` (median wall
    time) and ``state_bytes`` (the state's memory after the n tokens).
    """
    ctx = [check_int("contexts[i]", c, 1) for c in contexts]
    if not ctx or any(b <= a for a, b in zip(ctx, ctx[1:])):
        raise ValueError(f"contexts must be a non-empty increasing list, got {contexts!r}")
    n_steps = check_int("n_steps", n_steps, 1, 10_000)
    V = vocab_size if vocab_size is not None else model.config.vocab_size
    V = check_int("vocab_size", V, 2)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))
    device = next(model.parameters()).device
    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(1)
    try:
        states, state, length = [], model.init_state(1), 0
        for n in ctx:
            idx = torch.randint(0, V, (1, n - length), generator=g).to(device)
            _, state = model(idx, state, return_state=True)
            length = n
            states.append(state)
            state = state.clone()
        nbytes = [float(s.nbytes) for s in states]
        cpu = np.zeros((n_steps, len(ctx)))
        wall = np.zeros((n_steps, len(ctx)))
        tokens = torch.randint(0, V, (n_steps, 1), generator=g).to(device)
        for r in range(n_steps):
            for j in range(len(ctx)):
                c0, t0 = time.thread_time(), time.perf_counter()
                _, states[j] = model.forward_step(tokens[r], states[j])
                cpu[r, j], wall[r, j] = time.thread_time() - c0, time.perf_counter() - t0
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
    return {
        "context": [float(c) for c in ctx],
        "ms_per_token": (1e3 * np.median(cpu, axis=0)).tolist(),
        "wall_ms_per_token": (1e3 * np.median(wall, axis=0)).tolist(),
        "state_bytes": nbytes,
    }


def recall_probe(
    model: nn.Module,
    n_pairs: list[int],
    *,
    steps: int,
    n_keys: int = 16,
    batch_size: int = 32,
    lr: float = 3e-3,
    n_test: int = 128,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` (vocabulary ``2·n_keys``) on multi-query associative recall with a number
    of pairs drawn from ``n_pairs`` per batch, then return the query accuracy for each number of
    pairs on ``n_test`` fresh sequences (chance level: 1/n_keys)."""
    from .data import associative_recall, recall_sampler

    steps = check_int("steps", steps, 1)
    n_test = check_int("n_test", n_test, 1)
    sampler = recall_sampler(n_pairs, batch_size, n_keys=n_keys, n_values=n_keys)
    val = associative_recall(n_test, max(n_pairs), n_keys=n_keys, n_values=n_keys, seed=seed + 1)[
        :2
    ]
    cfg = TrainConfig(
        batch_size=batch_size,
        ctx_len=4 * max(n_pairs),
        lr=lr,
        max_steps=steps,
        warmup_steps=min(20, steps),
        eval_every=steps,
        eval_windows=1,
        seed=seed,
    )
    train(model, sampler, val, cfg, progress=False, desc="recall")
    return [
        masked_accuracy(
            model,
            *associative_recall(n_test, n, n_keys=n_keys, n_values=n_keys, seed=seed + 2 + n)[:2],
        )
        for n in n_pairs
    ]
