"""A same-size GPT baseline for the tiny RWKV (nanoGPT-style, no plotting here).

Architecture (C = width, H heads of size D = C/H, learned positions, pre-LayerNorm)::

    x = wte[idx] + wpe[0..T-1]
    for each block: x = x + W_o · MHA(ln1(x));  x = x + W_2 · gelu(W_1 · ln2(x))
    logits = head(ln_f(x))

with causal softmax attention  MHA_t = Σ_{i≤t} softmax_i(q_t·k_i / √D) v_i  per head.
Parameters ≈ 12·L·C² + (V + ctx_len)·C + V·C, the same size as RWKV-4's 13·L·C² + 2·V·C.

Decoding uses a key/value cache (:class:`KVCache`): each new token attends to all cached keys,
so time per token and memory grow linearly with the context, and the learned position table
limits the context to ``ctx_len``. The interface mirrors :class:`~course_lib.rwkv.model.RWKV`
(``forward(idx, state, return_state)``, ``init_state``, ``forward_step``) so one training loop,
one decoding benchmark and one sampler serve both models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import check_int
from .model import check_generation_args, check_token_ids, generate

__all__ = ["GPTConfig", "GPT", "KVCache", "generate_gpt"]


@dataclass
class GPTConfig:
    """Hyper-parameters of the GPT baseline (validated on construction); ``ctx_len`` is the
    maximum context (size of the learned position table)."""

    vocab_size: int
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    ctx_len: int = 128

    def __post_init__(self) -> None:
        self.vocab_size = check_int("vocab_size", self.vocab_size, 2, 10_000_000)
        self.n_layer = check_int("n_layer", self.n_layer, 1, 256)
        self.n_head = check_int("n_head", self.n_head, 1, 1024)
        self.n_embd = check_int("n_embd", self.n_embd, self.n_head, 65_536)
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd must be a multiple of n_head={self.n_head}, got {self.n_embd}"
            )
        self.ctx_len = check_int("ctx_len", self.ctx_len, 1, 1_000_000)


class KVCache:
    """Per-layer keys and values of the tokens seen so far, (n_layer, B, H, capacity, D) each.

    Storage grows by doubling (amortized O(1) appends); :attr:`nbytes` counts the ``length``
    filled positions: 2 · n_layer · B · length · C · 4 bytes in fp32.
    """

    def __init__(self, k: torch.Tensor, v: torch.Tensor, length: int = 0):
        self.k, self.v, self.length = k, v, length

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Store (B, H, T, D) keys/values of ``layer`` after the cached ones (``length`` is
        advanced by :meth:`advance`) and return all keys and values of that layer."""
        end = self.length + k.shape[2]
        if end > self.k.shape[3]:
            cap = max(end, 2 * self.k.shape[3], 16)
            grow = (*self.k.shape[:3], cap - self.k.shape[3], self.k.shape[4])
            self.k = torch.cat([self.k, self.k.new_zeros(grow)], dim=3)
            self.v = torch.cat([self.v, self.v.new_zeros(grow)], dim=3)
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n

    def clone(self) -> KVCache:
        return KVCache(self.k.clone(), self.v.clone(), self.length)

    @property
    def nbytes(self) -> int:
        """Bytes of the filled part of the cache (grows linearly with the context)."""
        L, B, H, _, D = self.k.shape
        return 2 * L * B * H * self.length * D * self.k.element_size()


class _Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.ln1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C)
        self.fc = nn.Linear(C, 4 * C)
        self.fc2 = nn.Linear(4 * C, C)

    def forward(self, x: torch.Tensor, cache: KVCache | None, layer: int) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (z.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            past = cache.length
            k, v = cache.append(layer, k, v)
            if past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            elif T == 1:  # one new token sees every cached key
                y = F.scaled_dot_product_attention(q, k, v)
            else:  # query t (absolute position past + t) sees keys 0..past + t
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    """A small causal transformer with learned positions and a KV-cache decode path."""

    def __init__(self, config: GPTConfig, *, seed: int = 0):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise ValueError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        V, C = config.vocab_size, config.n_embd
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(config.ctx_len, C)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        self._init_weights(check_int("seed", seed, 0, 2**63 - 1))

    def _init_weights(self, seed: int) -> None:
        """nanoGPT's recipe: N(0, 0.02) weights, zero biases, residual projections scaled by
        1/√(2L)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif p.ndim == 2:
                    std = (
                        0.02 / math.sqrt(2 * self.config.n_layer)
                        if "proj" in name or "fc2" in name
                        else 0.02
                    )
                    p.copy_(torch.randn(p.shape, generator=g) * std)

    def num_params(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    def init_state(self, batch_size: int = 1) -> KVCache:
        """An empty KV cache for ``batch_size`` rows."""
        B = check_int("batch_size", batch_size, 1)
        c = self.config
        w = self.head.weight
        z = w.new_zeros(c.n_layer, B, c.n_head, 0, c.n_embd // c.n_head)
        return KVCache(z, z.clone())

    def _check_idx(self, idx: torch.Tensor, ndim: int) -> None:
        check_token_ids(idx, ndim, self.config.vocab_size)

    def forward(
        self, idx: torch.Tensor, state: KVCache | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, KVCache]:
        """Logits (B, T, V) for ``idx`` (B, T). With ``state`` (a KV cache) the tokens continue
        the cached context and the cache is extended (in place) and returned if asked."""
        self._check_idx(idx, 2)
        B, T = idx.shape
        if return_state and state is None:
            state = self.init_state(B)
        past = 0 if state is None else state.length
        if past + T > self.config.ctx_len:
            raise ValueError(
                f"context length must be at most ctx_len={self.config.ctx_len} (learned "
                f"positions), got {past + T}"
            )
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for i, block in enumerate(self.blocks):
            x = block(x, state, i)
        if state is not None:
            state.advance(T)
        logits = self.head(self.ln_f(x))
        return (logits, state) if return_state else logits

    def forward_step(
        self, tokens: torch.Tensor, state: KVCache | None = None
    ) -> tuple[torch.Tensor, KVCache]:
        """One token per row with the KV cache: (logits (B, V), extended cache). The cost grows
        with the number of cached tokens. The cache is extended in place (clone to branch)."""
        self._check_idx(tokens, 1)
        if state is None:
            state = self.init_state(tokens.shape[0])
        logits, state = self.forward(tokens[:, None], state, return_state=True)
        return logits[:, 0], state


@torch.no_grad()
def generate_gpt(
    model: GPT,
    prompt_ids: list[int],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Like :func:`course_lib.rwkv.model.generate` for the GPT (prompt in parallel, then one
    cached step per token); the prompt is truncated to its last ``ctx_len - max_new_tokens``
    tokens so the learned position table is never exceeded. Returns the new ids only."""
    if not isinstance(model, GPT):
        raise ValueError(f"model must be a GPT, got {type(model).__name__}")
    ctx = model.config.ctx_len
    n = check_generation_args(prompt_ids, max_new_tokens, temperature, top_p, seed, ctx - 1)[0]
    prompt = list(prompt_ids)[-(ctx - n) :]
    return generate(model, prompt, n, temperature=temperature, top_p=top_p, seed=seed)
