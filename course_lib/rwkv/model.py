"""A tiny RWKV-4 language model, readable top to bottom (Peng et al., arXiv 2305.13048).

Contents, in reading order:

1. :class:`RWKVConfig` — the hyper-parameters.
2. The WKV operator in three exact forms, all on (B, T, C) tensors:
   :func:`wkv_recurrent` (the numerically stable RNN, the reference),
   :func:`wkv_parallel` (attention with a fixed per-channel distance decay and no query) and
   :func:`wkv_chunked` (the parallel form inside chunks plus a short scan across chunks: the
   training default on CPU).
3. :class:`TimeMix`, :class:`ChannelMix`, :class:`Block` and :class:`RWKV` (parallel forward,
   recurrent :meth:`RWKV.forward_step` on an :class:`RWKVState` of 5 vectors per layer).
4. RWKV-LM's initialization recipe (:func:`rwkv_init_`) and PyTorch's default init for comparison.
5. :func:`generate` (temperature / top-p sampling in RNN mode); :func:`rnn_logits`.
6. :func:`export_state_dict` / :func:`load_official_state_dict` / :func:`save_official` with the
   official RWKV-LM key names, so the official ``rwkv`` package can run our weights
   (:func:`compare_with_official`).
7. :func:`default_device`.
8. :func:`init_scale_run`: the first training steps on a toy Markov source, to compare inits.

Architecture (C = width, F = 4C, V = vocab)::

    x = ln0(emb[idx])
    for each block:  x = x + TimeMix(ln1(x));  x = x + ChannelMix(ln2(x))
    logits = head(ln_out(x))

WKV, per channel, with w = −exp(time_decay) < 0 and u = time_first::

    wkv_t = (Σ_{i<t} e^{(t−1−i)w + k_i} v_i + e^{u + k_t} v_t)
            / (Σ_{i<t} e^{(t−1−i)w + k_i}     + e^{u + k_t})

The decay, the bonus, the WKV arithmetic and the recurrent state are kept in (at least) fp32.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .._validate import (
    check_array,
    check_choice,
    check_divergence,
    check_int,
    check_real,
    check_rng,
)

__all__ = [
    "RWKVConfig",
    "RWKVState",
    "RWKV",
    "TimeMix",
    "ChannelMix",
    "Block",
    "WKV_FORMS",
    "DEFAULT_CHUNK",
    "wkv_recurrent",
    "wkv_parallel",
    "wkv_chunked",
    "wkv_logits",
    "rwkv_init_",
    "default_init_",
    "perturb_zero_init_",
    "generate",
    "check_generation_args",
    "export_state_dict",
    "load_official_state_dict",
    "save_official",
    "default_device",
    "rnn_logits",
    "compare_with_official",
    "half_life",
    "attention_weights",
    "markov_tokens",
    "init_scale_run",
]

#: WKV implementations selectable in :class:`RWKVConfig` ("identity" replaces WKV by v: the
#: benchmark ceiling, not a language model).
WKV_FORMS = ("chunked", "parallel", "recurrent", "identity")

#: Default chunk length Q of the chunked WKV. Its cost is ~Q·T·C for the in-chunk softmax plus
#: T/Q scan steps; measured on CPU (B16, T128, C128, fp32, one thread, forward + backward):
#: Q = 2/4/8/16 -> 160/132/198/403 ms against 534 ms for the step-by-step loop.
DEFAULT_CHUNK = 4

#: Initial running-max exponent of the stable recurrence ("minus infinity" that stays finite).
PP_INIT = -1e38


# ----------------------------------------------------------------------------------------------
# 1. Configuration
# ----------------------------------------------------------------------------------------------
@dataclass
class RWKVConfig:
    """Hyper-parameters of a small RWKV-4 model (validated on construction).

    ``ctx_len`` is the training context only: as an RNN the model runs on any length.
    ``wkv`` chooses the WKV form used by :meth:`RWKV.forward`; ``chunk`` is the chunk length Q
    of the chunked form.
    """

    vocab_size: int
    n_layer: int = 4
    n_embd: int = 128
    ctx_len: int = 128
    wkv: str = "chunked"
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        self.vocab_size = check_int("vocab_size", self.vocab_size, 2, 10_000_000)
        self.n_layer = check_int("n_layer", self.n_layer, 1, 256)
        self.n_embd = check_int("n_embd", self.n_embd, 2, 65_536)
        self.ctx_len = check_int("ctx_len", self.ctx_len, 1, 1_000_000)
        self.wkv = check_choice("wkv", self.wkv, WKV_FORMS)
        self.chunk = check_int("chunk", self.chunk, 1, 4096)


# ----------------------------------------------------------------------------------------------
# 2. The WKV operator in three exact forms
# ----------------------------------------------------------------------------------------------
WKVCarry = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (aa, bb, pp), each (B, C)


def _check_wkv_inputs(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    for name, t in (("w", w), ("u", u), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point torch.Tensor, got {type(t).__name__}"
            )
    if k.ndim != 3 or v.shape != k.shape:
        raise ValueError(
            f"k and v must both have shape (B, T, C), got {tuple(k.shape)} and {tuple(v.shape)}"
        )
    C = k.shape[-1]
    if w.shape != (C,) or u.shape != (C,):
        raise ValueError(
            f"w and u must have shape ({C},), got {tuple(w.shape)} and {tuple(u.shape)}"
        )


def _init_carry(state: WKVCarry | None, B: int, C: int, like: torch.Tensor) -> WKVCarry:
    if state is None:
        zeros = torch.zeros(B, C, dtype=like.dtype, device=like.device)
        return zeros, zeros.clone(), torch.full_like(zeros, PP_INIT)
    aa, bb, pp = state
    for name, t in (("aa", aa), ("bb", bb), ("pp", pp)):
        if t.shape != (B, C):
            raise ValueError(f"state {name} must have shape ({B}, {C}), got {tuple(t.shape)}")
    return aa.to(like.dtype), bb.to(like.dtype), pp.to(like.dtype)


def wkv_recurrent(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: WKVCarry | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, WKVCarry]:
    """WKV as an RNN, the numerically stable form (the reference everywhere).

    State (aa, bb, pp): numerator and denominator scaled by e^{−pp}, pp a running max exponent
    (starting at −1e38). Per step t::

        ww = u + k_t;  p = max(pp, ww);  e1 = e^{pp−p};  e2 = e^{ww−p}
        wkv_t = (e1·aa + e2·v_t) / (e1·bb + e2)
        ww = w + pp;   p = max(ww, k_t); e1 = e^{ww−p};  e2 = e^{k_t−p}
        aa = e1·aa + e2·v_t;  bb = e1·bb + e2;  pp = p

    ``w`` (C,) is the log-decay (negative), ``u`` (C,) the bonus, ``k``/``v`` (B, T, C).
    Returns wkv (B, T, C), and the final state when ``return_state``.
    """
    _check_wkv_inputs(w, u, k, v)
    B, T, C = k.shape
    aa, bb, pp = _init_carry(state, B, C, k)
    out = []
    for t in range(T):
        kt, vt = k[:, t], v[:, t]
        ww = u + kt
        p = torch.maximum(pp, ww)
        e1, e2 = torch.exp(pp - p), torch.exp(ww - p)
        out.append((e1 * aa + e2 * vt) / (e1 * bb + e2))
        ww = w + pp
        p = torch.maximum(ww, kt)
        e1, e2 = torch.exp(ww - p), torch.exp(kt - p)
        aa, bb, pp = e1 * aa + e2 * vt, e1 * bb + e2, p
    y = torch.stack(out, dim=1) if T else k.new_zeros(B, 0, C)
    return (y, (aa, bb, pp)) if return_state else y


def _decay_matrix(w: torch.Tensor, u: torch.Tensor, T: int) -> torch.Tensor:
    """D[t, i, c] = (t−1−i)·w_c for i < t, u_c for i = t, −∞ for i > t (shape (T, T, C))."""
    idx = torch.arange(T, device=w.device)
    dist = (idx[:, None] - 1 - idx[None, :]).to(w.dtype)  # (T, T)
    past = dist[..., None] * w  # (T, T, C)
    D = torch.where(
        (idx[:, None] > idx[None, :])[..., None], past, torch.full_like(past, -math.inf)
    )
    diag = idx[:, None] == idx[None, :]
    return torch.where(diag[..., None], u.expand_as(past), D)


def wkv_logits(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Attention logits of WKV: L[..., t, i, c] = D[t, i, c] + k[..., i, c] (see `_decay_matrix`).

    ``k`` has shape (..., T, C); the result (..., T, T, C). softmax over i gives the attention
    weights WKV puts on token i when producing token t, channel c (no query: they depend only
    on the keys and the distance).
    """
    T = k.shape[-2]
    return _decay_matrix(w, u, T) + k.unsqueeze(-3)


def attention_weights(
    time_decay: float, time_first: float, T: int, k: torch.Tensor | None = None
) -> torch.Tensor:
    """The (T, T) matrix A[t, i] = softmax_i(L[t, i]) of one WKV channel (rows sum to 1).

    With keys k = 0 (default) the weight on a token d ≥ 1 steps back is ∝ e^{(d−1)·w}, on the
    current token ∝ e^{u}: a fixed distance decay per channel, and no query.
    """
    td = check_real("time_decay", time_decay, -20.0, 5.0)
    tf = check_real("time_first", time_first, -50.0, 50.0)
    T = check_int("T", T, 1, 4096)
    w = -torch.exp(torch.tensor([td], dtype=torch.float64))
    u = torch.tensor([tf], dtype=torch.float64)
    keys = torch.zeros(T, 1, dtype=torch.float64) if k is None else k.double().reshape(T, 1)
    return torch.softmax(wkv_logits(w, u, keys), dim=-2)[..., 0]


def half_life(time_decay: torch.Tensor | float) -> torch.Tensor:
    """Memory half-life in tokens of a channel: the state decays by e^w per step with
    w = −exp(time_decay), so it halves after ln 2 / exp(time_decay) steps."""
    td = torch.as_tensor(time_decay, dtype=torch.float64)
    if not torch.isfinite(td).all():
        raise ValueError("time_decay must be finite")
    return math.log(2.0) / torch.exp(td)


def _attend(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    aa: torch.Tensor,
    bb: torch.Tensor,
    pp: torch.Tensor,
) -> torch.Tensor:
    """The parallel ("attention") form on blocks (..., Q, C) with an incoming state (..., C).

    wkv_t = (Σ_i e^{L[t,i]} v_i + e^{pp + t·w} aa) / (Σ_i e^{L[t,i]} + e^{pp + t·w} bb): the
    state enters as one extra, decaying "virtual token". Exponents are shifted by their max
    (a constant for autograd: the ratio does not depend on it).
    """
    Q = k.shape[-2]
    L = wkv_logits(w, u, k)  # (..., Q, Q, C)
    t = torch.arange(Q, device=k.device, dtype=k.dtype)[:, None]
    Ls = pp.unsqueeze(-2) + t * w  # (..., Q, C): the state's logit at each position
    M = torch.maximum(L.amax(-2), Ls).detach()
    E = torch.exp(L - M.unsqueeze(-2))
    Es = torch.exp(Ls - M)
    num = (E * v.unsqueeze(-3)).sum(-2) + Es * aa.unsqueeze(-2)
    den = E.sum(-2) + Es * bb.unsqueeze(-2)
    return num / den


def _summarize(w: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> WKVCarry:
    """A block's contribution to the state at its end: (Σ e^{s_i−m} v_i, Σ e^{s_i−m}, m) with
    s_i = (Q−1−i)·w + k_i and m = max_i s_i, for blocks (..., Q, C)."""
    Q = k.shape[-2]
    back = (Q - 1 - torch.arange(Q, device=k.device, dtype=k.dtype))[:, None] * w
    s = k + back
    m = s.amax(-2).detach()
    e = torch.exp(s - m.unsqueeze(-2))
    return (e * v).sum(-2), e.sum(-2), m


def _advance(carry: WKVCarry, summary: WKVCarry, w: torch.Tensor, Q: int) -> WKVCarry:
    """State after a block of Q tokens: a' = e^{Qw}·a + block sum, in max-shifted form."""
    aa, bb, pp = carry
    sa, sb, m = summary
    decayed = pp + Q * w
    p = torch.maximum(decayed, m).detach()
    e1, e2 = torch.exp(decayed - p), torch.exp(m - p)
    return e1 * aa + e2 * sa, e1 * bb + e2 * sb, p


def wkv_parallel(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: WKVCarry | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, WKVCarry]:
    """WKV as attention: wkv_t = Σ_i softmax_i(L[t, ·, c]) v_{i,c} with the logits of
    :func:`wkv_logits` (a fixed per-channel distance decay, a bonus u on the current token, no
    query). Exact; O(T²·C) memory and time, for teaching. Same signature as
    :func:`wkv_recurrent`.
    """
    _check_wkv_inputs(w, u, k, v)
    B, T, C = k.shape
    carry = _init_carry(state, B, C, k)
    y = _attend(w, u, k, v, *carry)
    if not return_state:
        return y
    return y, _advance(carry, _summarize(w, k, v), w, T)


def wkv_chunked(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    chunk: int = DEFAULT_CHUNK,
    state: WKVCarry | None = None,
    return_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, WKVCarry]:
    """WKV in chunks of Q = ``chunk`` tokens: the parallel form inside every chunk (all chunks
    at once), chunk summaries (max, Σe·v, Σe) and a short stable scan across the T/Q chunks to
    get each chunk's incoming state. Exact to rounding and differentiable; the training default.
    A last partial chunk is handled on its own.
    """
    _check_wkv_inputs(w, u, k, v)
    Q = check_int("chunk", chunk, 1, 4096)
    B, T, C = k.shape
    carry = _init_carry(state, B, C, k)
    N = T // Q
    pieces = []
    if N:
        kc = k[:, : N * Q].reshape(B, N, Q, C)
        vc = v[:, : N * Q].reshape(B, N, Q, C)
        sa, sb, m = _summarize(w, kc, vc)  # (B, N, C) each
        incoming = []
        for n in range(N):  # the scan: N = T/Q short steps
            incoming.append(carry)
            carry = _advance(carry, (sa[:, n], sb[:, n], m[:, n]), w, Q)
        aa, bb, pp = (torch.stack(z, dim=1) for z in zip(*incoming, strict=True))
        pieces.append(_attend(w, u, kc, vc, aa, bb, pp).reshape(B, N * Q, C))
    if T > N * Q:  # the tail chunk
        kt, vt = k[:, N * Q :], v[:, N * Q :]
        pieces.append(_attend(w, u, kt, vt, *carry))
        if return_state:
            carry = _advance(carry, _summarize(w, kt, vt), w, T - N * Q)
    y = torch.cat(pieces, dim=1) if pieces else k.new_zeros(B, 0, C)
    return (y, carry) if return_state else y


# ----------------------------------------------------------------------------------------------
# 3. The model
# ----------------------------------------------------------------------------------------------
@dataclass
class RWKVState:
    """The RNN state: 5 vectors per layer, each tensor of shape (n_layer, B, C), fp32 (or fp64).

    ``att_x``: the time-mix input (post-ln1) of the last token, for the token shift;
    ``aa``, ``bb``, ``pp``: the WKV numerator, denominator and running max exponent;
    ``ffn_x``: the channel-mix input (post-ln2) of the last token.
    States are never mutated in place: every step returns a new one (branching is safe).
    """

    att_x: torch.Tensor
    aa: torch.Tensor
    bb: torch.Tensor
    pp: torch.Tensor
    ffn_x: torch.Tensor

    def layer(self, i: int) -> tuple[torch.Tensor, ...]:
        """The 5 vectors of layer ``i`` (each (B, C))."""
        return self.att_x[i], self.aa[i], self.bb[i], self.pp[i], self.ffn_x[i]

    @classmethod
    def stack(cls, layers: list[tuple[torch.Tensor, ...]]) -> RWKVState:
        """Build a state from a list of per-layer 5-tuples."""
        return cls(*(torch.stack(z) for z in zip(*layers, strict=True)))

    def clone(self) -> RWKVState:
        return RWKVState(*(t.clone() for t in self.tensors()))

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.att_x, self.aa, self.bb, self.pp, self.ffn_x

    @property
    def nbytes(self) -> int:
        """Memory of the state in bytes (constant in the sequence length)."""
        return sum(t.numel() * t.element_size() for t in self.tensors())


def _token_shift(x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """x_{t−1} for every t of x (B, T, C), with ``last`` (B, C) as x_{−1}."""
    return torch.cat([last.unsqueeze(1).to(x.dtype), x[:, :-1]], dim=1)


def _mix(x: torch.Tensor, xx: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Token shift interpolation μ ⊙ x_t + (1 − μ) ⊙ x_{t−1}."""
    return x * mu + xx * (1 - mu)


class TimeMix(nn.Module):
    """RWKV-4 time mixing: token shift, r/k/v projections, WKV, receptance gate, output.

    out = W_o(σ(r) ⊙ wkv(w, u, k, v)), w = −exp(time_decay), u = time_first.
    """

    def __init__(self, config: RWKVConfig):
        super().__init__()
        C = config.n_embd
        self.wkv_form, self.chunk = config.wkv, config.chunk
        self.time_decay = nn.Parameter(torch.zeros(C))
        self.time_first = nn.Parameter(torch.zeros(C))
        self.time_mix_k = nn.Parameter(torch.ones(1, 1, C))
        self.time_mix_v = nn.Parameter(torch.ones(1, 1, C))
        self.time_mix_r = nn.Parameter(torch.ones(1, 1, C))
        self.key = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(C, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.output = nn.Linear(C, C, bias=False)

    def decay_and_bonus(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, u) in at least fp32: w = −exp(time_decay), u = time_first."""
        dt = torch.promote_types(self.time_decay.dtype, torch.float32)
        return -torch.exp(self.time_decay.to(dt)), self.time_first.to(dt)

    def forward(
        self,
        x: torch.Tensor,
        shift: torch.Tensor,
        carry: WKVCarry,
        form: str | None = None,
        need_state: bool = True,
    ) -> tuple[torch.Tensor, WKVCarry | None]:
        """x: post-ln1 input (B, T, C); shift: x_{−1} (B, C); carry: WKV state (aa, bb, pp).
        Returns the output and the new WKV state (None unless ``need_state``)."""
        xx = _token_shift(x, shift)
        k = self.key(_mix(x, xx, self.time_mix_k))
        v = self.value(_mix(x, xx, self.time_mix_v))
        r = self.receptance(_mix(x, xx, self.time_mix_r))
        w, u = self.decay_and_bonus()
        k, v = k.to(w.dtype), v.to(w.dtype)
        form = form or self.wkv_form
        if form == "identity":  # benchmark ceiling: no WKV at all (state left untouched)
            y = v
        elif form == "chunked":
            y = wkv_chunked(w, u, k, v, self.chunk, state=carry, return_state=need_state)
        elif form == "parallel":
            y = wkv_parallel(w, u, k, v, state=carry, return_state=need_state)
        else:
            y = wkv_recurrent(w, u, k, v, state=carry, return_state=need_state)
        if isinstance(y, tuple):
            y, carry = y
        return self.output(torch.sigmoid(r) * y.to(x.dtype)), carry if need_state else None


class ChannelMix(nn.Module):
    """RWKV-4 channel mixing: σ(W_r xr) ⊙ W_v relu(W_k xk)², with token shift (F = 4C)."""

    def __init__(self, config: RWKVConfig):
        super().__init__()
        C = config.n_embd
        self.time_mix_k = nn.Parameter(torch.ones(1, 1, C))
        self.time_mix_r = nn.Parameter(torch.ones(1, 1, C))
        self.key = nn.Linear(C, 4 * C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        self.value = nn.Linear(4 * C, C, bias=False)

    def forward(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        xx = _token_shift(x, shift)
        k = torch.square(torch.relu(self.key(_mix(x, xx, self.time_mix_k))))
        r = torch.sigmoid(self.receptance(_mix(x, xx, self.time_mix_r)))
        return r * self.value(k)


class Block(nn.Module):
    """x = x + TimeMix(ln1(x)); x = x + ChannelMix(ln2(x)) (block 0 first applies ln0)."""

    def __init__(self, config: RWKVConfig, layer_id: int):
        super().__init__()
        C = config.n_embd
        self.layer_id = layer_id
        if layer_id == 0:
            self.ln0 = nn.LayerNorm(C)
        self.ln1 = nn.LayerNorm(C)
        self.ln2 = nn.LayerNorm(C)
        self.att = TimeMix(config)
        self.ffn = ChannelMix(config)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, ...],
        form: str | None = None,
        need_state: bool = True,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """x (B, T, C) and this layer's 5 state vectors -> new x and new 5 vectors (or None).
        The shift vectors stored are the post-LayerNorm inputs of the last token."""
        att_x, aa, bb, pp, ffn_x = state
        if self.layer_id == 0:
            x = self.ln0(x)
        h = self.ln1(x)
        dx, carry = self.att(h, att_x, (aa, bb, pp), form, need_state)
        x = x + dx
        g = self.ln2(x)
        x = x + self.ffn(g, ffn_x)
        if carry is None:
            return x, None
        sdt = carry[0].dtype
        return x, (h[:, -1].to(sdt), *carry, g[:, -1].to(sdt))


class RWKV(nn.Module):
    """A small RWKV-4 language model with two faces: a parallel forward for training
    (:meth:`forward`) and an RNN for inference (:meth:`forward_step`).

    Parameters are initialized with RWKV-LM's recipe (:func:`rwkv_init_`) from ``seed``;
    ``init="default"`` uses PyTorch's default initialization instead (for comparison), and
    ``emb_scale`` sets the half-width of the uniform embedding init of the RWKV recipe.
    """

    def __init__(
        self,
        config: RWKVConfig,
        *,
        seed: int = 0,
        init: str = "rwkv",
        emb_scale: float = 1e-4,
    ):
        super().__init__()
        if not isinstance(config, RWKVConfig):
            raise ValueError(f"config must be an RWKVConfig, got {type(config).__name__}")
        check_choice("init", init, ("rwkv", "default"))
        self.config = config
        V, C = config.vocab_size, config.n_embd
        self.emb = nn.Embedding(V, C)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_out = nn.LayerNorm(C)
        self.head = nn.Linear(C, V, bias=False)
        if init == "rwkv":
            rwkv_init_(self, seed=seed, emb_scale=emb_scale)
        else:
            default_init_(self, seed=seed)

    # -- sizes ---------------------------------------------------------------------------------
    def num_params(self) -> int:
        """Number of trainable parameters (≈ 13·L·C² + 2·V·C)."""
        return sum(p.numel() for p in self.parameters())

    def state_bytes(self, batch_size: int = 1) -> int:
        """Bytes of the RNN state: 5 · n_layer · n_embd · batch_size values in fp32."""
        check_int("batch_size", batch_size, 1)
        return 5 * self.config.n_layer * self.config.n_embd * batch_size * 4

    # -- state ---------------------------------------------------------------------------------
    def _state_dtype(self) -> torch.dtype:
        return torch.promote_types(self.head.weight.dtype, torch.float32)

    def init_state(self, batch_size: int = 1) -> RWKVState:
        """The empty state (shift vectors 0, aa = bb = 0, pp = −1e38) for ``batch_size`` rows."""
        B = check_int("batch_size", batch_size, 1)
        L, C = self.config.n_layer, self.config.n_embd
        z = torch.zeros(L, B, C, dtype=self._state_dtype(), device=self.head.weight.device)
        return RWKVState(z, z.clone(), z.clone(), torch.full_like(z, PP_INIT), z.clone())

    # -- the two faces -------------------------------------------------------------------------
    def _check_idx(self, idx: torch.Tensor, ndim: int) -> None:
        check_token_ids(idx, ndim, self.config.vocab_size)

    def _check_state(self, state: RWKVState, B: int) -> None:
        if not isinstance(state, RWKVState):
            raise ValueError(f"state must be an RWKVState, got {type(state).__name__}")
        want = (self.config.n_layer, B, self.config.n_embd)
        if any(t.shape != want for t in state.tensors()):
            raise ValueError(f"state tensors must have shape {want}, got {tuple(state.aa.shape)}")

    def _run(
        self, idx: torch.Tensor, state: RWKVState | None, form: str | None, need_state: bool
    ) -> tuple[torch.Tensor, RWKVState | None]:
        B = idx.shape[0]
        if state is None:
            state = self.init_state(B)
        self._check_state(state, B)
        x = self.emb(idx)
        layers = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, state.layer(i), form, need_state)
            layers.append(s)
        logits = self.head(self.ln_out(x))
        return logits, RWKVState.stack(layers) if need_state else None

    def forward(
        self, idx: torch.Tensor, state: RWKVState | None = None, return_state: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, RWKVState]:
        """Parallel form: logits (B, T, V) for token ids ``idx`` (B, T), with the WKV form of
        the config. Pass ``state`` to continue a sequence; ``return_state=True`` also returns
        the state after the last token (so [a b] then [c d e] equals [a b c d e])."""
        self._check_idx(idx, 2)
        logits, new_state = self._run(idx, state, None, return_state)
        return (logits, new_state) if return_state else logits

    def forward_step(
        self, tokens: torch.Tensor, state: RWKVState | None = None
    ) -> tuple[torch.Tensor, RWKVState]:
        """RNN form: one token per row, ``tokens`` (B,) → (logits (B, V), new state), using the
        stable WKV recurrence. Memory and time per token do not depend on the position."""
        self._check_idx(tokens, 1)
        logits, new_state = self._run(tokens[:, None], state, "recurrent", True)
        return logits[:, 0], new_state


@torch.no_grad()
def rnn_logits(model: RWKV, idx: torch.Tensor, state: RWKVState | None = None) -> torch.Tensor:
    """Logits (B, T, V) computed token by token with :meth:`RWKV.forward_step` (the RNN face),
    for comparison with the parallel :meth:`RWKV.forward`."""
    if not isinstance(model, RWKV):
        raise ValueError(f"model must be an RWKV, got {type(model).__name__}")
    model._check_idx(idx, 2)
    out = []
    for t in range(idx.shape[1]):
        logits, state = model.forward_step(idx[:, t], state)
        out.append(logits)
    return torch.stack(out, dim=1)


# ----------------------------------------------------------------------------------------------
# 4. Initialization
# ----------------------------------------------------------------------------------------------
def _orthogonal(weight: torch.Tensor, gain: float, g: torch.Generator) -> None:
    rows, cols = weight.shape
    nn.init.orthogonal_(
        weight, gain=gain * (math.sqrt(rows / cols) if rows > cols else 1.0), generator=g
    )


@torch.no_grad()
def _init_time_params(model: RWKV) -> None:
    """RWKV-LM's ramps: decay from ~0.993 down to ~0 per step, zig-zag bonus, layer-ramped mixes.

    time_decay[h] = −5 + 8·(h/(C−1))^(0.7 + 1.3·r01);
    time_first[h] = ln 0.3 + 0.5·((h+1) mod 3 − 1);
    time_mix_k = d^r10, time_mix_v = d^r10 + 0.3·r01, time_mix_r = d^(0.5·r10) with d_h = h/C,
    r01 = i/(L−1), r10 = 1 − i/L for layer i; in the FFN time_mix_k = time_mix_r = d^r10.
    """
    L, C = model.config.n_layer, model.config.n_embd
    h = torch.arange(C, dtype=torch.float64)
    d = (h / C).view(1, 1, C)
    for i, block in enumerate(model.blocks):
        r01 = i / (L - 1) if L > 1 else 0.0
        r10 = 1.0 - i / L
        att, ffn = block.att, block.ffn
        att.time_decay.copy_(-5 + 8 * (h / (C - 1)) ** (0.7 + 1.3 * r01))
        att.time_first.copy_(math.log(0.3) + 0.5 * (((h + 1) % 3) - 1))
        att.time_mix_k.copy_(d**r10)
        att.time_mix_v.copy_(d**r10 + 0.3 * r01)
        att.time_mix_r.copy_(d ** (0.5 * r10))
        ffn.time_mix_k.copy_(d**r10)
        ffn.time_mix_r.copy_(d**r10)


def _reset_layernorms(model: RWKV) -> None:
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def rwkv_init_(model: RWKV, *, seed: int = 0, emb_scale: float = 1e-4) -> RWKV:
    """RWKV-LM's initialization recipe (in place; returns the model).

    Time parameters: see :func:`_init_time_params`. Embedding uniform(±emb_scale) followed by
    ln0; att.key, att.receptance, att.output, ffn.receptance and ffn.value zero; the other
    matrices orthogonal with gain √(rows/cols) when rows > cols; head orthogonal with gain
    0.5·√(V/C) when V > C (0.5 otherwise). LayerNorms weight 1, bias 0.
    """
    check_int("seed", seed, 0, 2**63 - 1)
    emb_scale = check_real("emb_scale", emb_scale, 0.0, 100.0, low_open=True)
    g = torch.Generator().manual_seed(seed)
    _init_time_params(model)
    _reset_layernorms(model)
    model.emb.weight.copy_(torch.rand(model.emb.weight.shape, generator=g) * 2 - 1).mul_(emb_scale)
    for block in model.blocks:
        for lin in (
            block.att.key,
            block.att.receptance,
            block.att.output,
            block.ffn.receptance,
            block.ffn.value,
        ):
            nn.init.zeros_(lin.weight)
        for lin in (block.att.value, block.ffn.key):
            _orthogonal(lin.weight, 1.0, g)
    _orthogonal(model.head.weight, 0.5, g)
    return model


@torch.no_grad()
def default_init_(model: RWKV, *, seed: int = 0) -> RWKV:
    """PyTorch's default initialization, for comparison (in place; returns the model).

    Embedding N(0, 1); every Linear uniform(±1/√fan_in) (kaiming_uniform with a = √5);
    LayerNorms 1/0; the time parameters keep RWKV-LM's ramps (PyTorch has no default for them).
    """
    check_int("seed", seed, 0, 2**63 - 1)
    g = torch.Generator().manual_seed(seed)
    _init_time_params(model)
    _reset_layernorms(model)
    model.emb.weight.copy_(torch.randn(model.emb.weight.shape, generator=g))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            m.weight.copy_((torch.rand(m.weight.shape, generator=g) * 2 - 1) * bound)
    return model


@torch.no_grad()
def perturb_zero_init_(model: RWKV, *, scale: float = 0.1, seed: int = 0) -> RWKV:
    """Add N(0, scale²/fan_in) noise to every matrix and scale·N(0,1) to the LayerNorms and
    embedding, so equivalence checks are not trivially satisfied by zero projections."""
    scale = check_real("scale", scale, 0.0, 10.0, low_open=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p)
        if p.ndim == 2 and not name.startswith("emb"):
            p.add_(noise * scale / math.sqrt(p.shape[1]))
        elif not name.split(".")[-1].startswith("time_"):
            p.add_(noise * scale)
    return model


# ----------------------------------------------------------------------------------------------
# 5. Generation (RNN mode)
# ----------------------------------------------------------------------------------------------
def _sample(logits: torch.Tensor, temperature: float, top_p: float, g: torch.Generator) -> int:
    """Sample one token id from logits (V,): greedy if temperature = 0, else softmax(logits/T)
    restricted to the smallest set of most likely tokens with total probability ≥ top_p."""
    logits = logits.detach().double().cpu()
    if temperature == 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_p, 0) - sorted_p < top_p  # always keeps the top token
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=g))


def check_token_ids(idx: torch.Tensor, ndim: int, vocab_size: int) -> None:
    """Token ids must be a LongTensor of shape (B, T) (``ndim`` 2) or (B,) (``ndim`` 1) with
    values in [0, vocab_size); shared by every model of the course."""
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long or idx.ndim != ndim:
        shape = "(B, T)" if ndim == 2 else "(B,)"
        raise ValueError(f"idx must be a LongTensor of shape {shape}, got {idx!r:.80}")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= vocab_size):
        raise ValueError(
            f"idx values must be in [0, {vocab_size - 1}], got range "
            f"[{int(idx.min())}, {int(idx.max())}]"
        )


def check_generation_args(
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    max_new: int = 10_000_000,
) -> tuple[int, float, float, torch.Generator]:
    """Validate the sampling arguments shared by every ``generate`` of the course; returns
    (max_new_tokens, temperature, top_p, a seeded CPU torch.Generator)."""
    if not isinstance(prompt_ids, (list, tuple)) or len(prompt_ids) == 0:
        raise ValueError(
            f"prompt_ids must be a non-empty list of token ids, got {prompt_ids!r:.60}"
        )
    n = check_int("max_new_tokens", max_new_tokens, 0, max_new)
    temperature = check_real("temperature", temperature, 0.0, 100.0)
    top_p = check_real("top_p", top_p, 0.0, 1.0, low_open=True)
    g = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))
    return n, temperature, top_p, g


@torch.no_grad()
def generate(
    model: RWKV,
    prompt_ids: list[int],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Continue ``prompt_ids`` by ``max_new_tokens`` sampled tokens; returns the NEW ids only.

    The prompt is read once (parallel form, carrying the state), then each new token costs one
    :meth:`RWKV.forward_step`: constant time and memory per token. ``temperature`` 0 is greedy.
    Any model with the same two faces (``forward(idx, return_state=True)`` and
    ``forward_step(tokens, state)``, e.g. the GPT baseline with its KV cache) works too.
    """
    if not (isinstance(model, nn.Module) and hasattr(model, "forward_step")):
        raise ValueError(
            f"model must be an RWKV (or a module with forward_step), got {type(model).__name__}"
        )
    n, temperature, top_p, g = check_generation_args(
        prompt_ids, max_new_tokens, temperature, top_p, seed
    )
    device = model.head.weight.device
    idx = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    was_training = model.training
    model.eval()
    try:
        logits, state = model(idx, return_state=True)
        last = logits[0, -1]
        out: list[int] = []
        for _ in range(n):
            tok = _sample(last, temperature, top_p, g)
            out.append(tok)
            if len(out) < n:  # the last token's logits are never used
                step_logits, state = model.forward_step(
                    torch.tensor([tok], dtype=torch.long, device=device), state
                )
                last = step_logits[0]
    finally:
        model.train(was_training)
    return out


# ----------------------------------------------------------------------------------------------
# 6. Official RWKV-LM state dicts
# ----------------------------------------------------------------------------------------------
def export_state_dict(model: RWKV) -> dict[str, torch.Tensor]:
    """The weights under RWKV-LM's names (emb.weight, blocks.{i}.ln0/ln1/ln2,
    blocks.{i}.att.{time_decay, time_first, time_mix_k/v/r, key, value, receptance, output}.weight,
    blocks.{i}.ffn.{time_mix_k/r, key, receptance, value}.weight, ln_out, head.weight), as
    detached fp32 CPU tensors. Our module names are chosen to match, so this is state_dict()."""
    if not isinstance(model, RWKV):
        raise ValueError(f"model must be an RWKV, got {type(model).__name__}")
    return {k: t.detach().to("cpu", torch.float32).clone() for k, t in model.state_dict().items()}


def load_official_state_dict(
    sd: dict[str, torch.Tensor],
    *,
    ctx_len: int = 128,
    wkv: str = "chunked",
    chunk: int = DEFAULT_CHUNK,
) -> RWKV:
    """Build an :class:`RWKV` from an RWKV-4 state dict with RWKV-LM key names (the inverse of
    :func:`export_state_dict`). Sizes are read from the tensors; keys must match exactly."""
    if not isinstance(sd, dict) or "emb.weight" not in sd:
        raise ValueError("sd must be an RWKV-4 state dict with an 'emb.weight' entry")
    V, C = sd["emb.weight"].shape
    n_layer = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    if sd["blocks.0.ffn.key.weight"].shape != (4 * C, C):
        raise ValueError(f"sd ffn.key must have shape ({4 * C}, {C}) (F = 4C)")
    config = RWKVConfig(V, n_layer, C, ctx_len=ctx_len, wkv=wkv, chunk=chunk)
    model = RWKV(config)
    want, got = set(model.state_dict()), set(sd)
    if want != got:
        raise ValueError(
            f"sd keys do not match RWKV-4: missing {sorted(want - got)[:5]}, "
            f"unexpected {sorted(got - want)[:5]}"
        )
    model.load_state_dict(
        {k: torch.as_tensor(t).float().reshape(model.state_dict()[k].shape) for k, t in sd.items()}
    )
    return model


def save_official(model: RWKV, path: str | os.PathLike[str]) -> Path:
    """Save :func:`export_state_dict` to ``path`` (a ``.pth`` suffix is added if missing), the
    format the official ``rwkv`` package loads with ``RWKV(model=path, strategy="cpu fp32")``.
    Returns the path written."""
    p = Path(path)
    if p.suffix != ".pth":
        p = p.with_name(p.name + ".pth")
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(export_state_dict(model), p)
    return p


def compare_with_official(
    model: RWKV, tokens: list[int], workdir: str | os.PathLike[str]
) -> dict[str, float]:
    """Run our weights in the official ``rwkv`` package (CPU, fp32) and compare logits.

    Saves :func:`export_state_dict` to ``workdir``, loads it with
    ``rwkv.model.RWKV(model=path, strategy="cpu fp32")`` (RWKV_CUDA_ON=0 and RWKV_JIT_ON=0 are
    set before the import when unset; RWKV_V7_ON is left alone), and returns max |Δ| of the
    logits in sequence mode (``forward(tokens, None, full_output=True)``) and in recurrent mode
    (one token at a time, carrying its state) against our parallel forward, plus the logit scale.
    The package's printed output is silenced.
    """
    import contextlib
    import io

    if not isinstance(tokens, (list, tuple)) or len(tokens) < 2:
        raise ValueError(f"tokens must be a list of at least 2 token ids, got {tokens!r}")
    os.environ.setdefault("RWKV_CUDA_ON", "0")
    os.environ.setdefault("RWKV_JIT_ON", "0")
    path = save_official(model, Path(workdir) / "rwkv4_course")
    with contextlib.redirect_stdout(io.StringIO()):
        from rwkv.model import RWKV as OfficialRWKV

        official = OfficialRWKV(model=str(path.with_suffix("")), strategy="cpu fp32")
        seq, _ = official.forward(list(tokens), None, full_output=True)
        state, steps = None, []
        for tok in tokens:
            out, state = official.forward([tok], state)
            steps.append(out.clone())
    with torch.no_grad():
        ours = model(torch.tensor([list(tokens)], device=model.head.weight.device))[0]
    ours = ours.float().cpu()
    return {
        "sequence": float((seq.float() - ours).abs().max()),
        "recurrent": float((torch.stack(steps).float() - ours).abs().max()),
        "scale": float(ours.abs().max()),
    }


# ----------------------------------------------------------------------------------------------
# 7. Device
# ----------------------------------------------------------------------------------------------
def default_device() -> torch.device:
    """CUDA when available, otherwise CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# 8. Does the init scale matter? A few training steps on a toy source
# ----------------------------------------------------------------------------------------------
def markov_tokens(
    vocab_size: int, n: int, seed: int | np.random.Generator = 0, concentration: float = 0.2
) -> tuple[np.ndarray, float]:
    """A token stream from a random first-order Markov chain (rows ~ Dirichlet(concentration)).

    Returns (tokens (n,), entropy rate in nats/token: Σ_a π_a H(P[a, ·]), the best achievable
    loss, π the stationary distribution).
    """
    V = check_int("vocab_size", vocab_size, 2, 4096)
    n = check_int("n", n, 2, 10_000_000)
    conc = check_real("concentration", concentration, 0.0, 1e3, low_open=True)
    rng = check_rng("seed", seed)
    P = rng.dirichlet(np.full(V, conc), size=V)
    cum = np.cumsum(P, axis=1)
    cum[:, -1] = 1.0
    draws = rng.random(n)
    toks = np.empty(n, dtype=np.int64)
    x = 0
    for i in range(n):
        x = int(np.searchsorted(cum[x], draws[i], side="right"))
        toks[i] = x
    evals, evecs = np.linalg.eig(P.T)
    pi = np.abs(np.real(evecs[:, np.argmin(np.abs(evals - 1.0))]))
    pi /= pi.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        H = -np.sum(np.where(P > 0, P * np.log(P), 0.0), axis=1)
    return toks, float(pi @ H)


def init_scale_run(
    tokens: np.ndarray,
    config: RWKVConfig,
    *,
    init: str = "rwkv",
    emb_scale: float = 1e-4,
    steps: int = 40,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """The first ``steps`` Adam steps (betas 0.9, 0.99) on random windows of ``tokens`` from the
    given init. Returns (training losses in nats/token, relative change of the embedding
    ‖E_end − E_0‖ / ‖E_0‖). The batches depend only on ``seed``, so runs with different inits
    see the same data. Raises DivergenceError if the loss blows up."""
    toks = torch.as_tensor(check_array("tokens", tokens, ndim=1, dtype=np.int64))
    steps = check_int("steps", steps, 1, 100_000)
    B = check_int("batch_size", batch_size, 1, 4096)
    lr = check_real("lr", lr, 0.0, 1.0, low_open=True)
    T = config.ctx_len
    if toks.numel() <= T + 1:
        raise ValueError(f"tokens must be longer than ctx_len + 1 = {T + 1}, got {toks.numel()}")
    model = RWKV(config, seed=seed, init=init, emb_scale=emb_scale)
    emb0 = model.emb.weight.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed + 1)
    offsets = torch.arange(T + 1)
    losses = np.empty(steps)
    for step in range(steps):
        ix = torch.randint(0, toks.numel() - T - 1, (B, 1), generator=g)
        win = toks[ix + offsets]
        logits = model(win[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), win[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.item()
        check_divergence(
            losses[step], step, method="Adam on RWKV", step_size=lr, reference=losses[0]
        )
    change = float(torch.linalg.norm(model.emb.weight.detach() - emb0) / torch.linalg.norm(emb0))
    return losses, change
