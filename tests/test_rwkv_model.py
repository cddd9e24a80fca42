"""Tests of the RWKV-4 model (course_lib.rwkv.model) and notebook 06's demos."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.demos import rwkv_build as demos
from course_lib.rwkv import model as rw
from tests.conftest import require


def wkv_inputs(B, T, C, dtype=torch.float64, seed=0, key_spread=3.0):
    g = torch.Generator().manual_seed(seed)
    k = key_spread * torch.randn(B, T, C, generator=g, dtype=torch.float64)
    v = torch.randn(B, T, C, generator=g, dtype=torch.float64)
    w = -torch.exp(torch.randn(C, generator=g, dtype=torch.float64))
    u = torch.randn(C, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (w, u, k, v)]


def naive_wkv(w, u, k, v):
    """The defining formula, evaluated directly (fp64, small keys only)."""
    B, T, C = k.shape
    out = torch.zeros_like(k)
    for t in range(T):
        num = torch.exp(u + k[:, t]) * v[:, t]
        den = torch.exp(u + k[:, t])
        for i in range(t):
            e = torch.exp((t - 1 - i) * w + k[:, i])
            num, den = num + e * v[:, i], den + e
        out[:, t] = num / den
    return out


def tiny_model(wkv="chunked", chunk=4, V=11, L=2, C=8, seed=0, perturb=True, dtype=torch.float64):
    m = rw.RWKV(rw.RWKVConfig(V, L, C, ctx_len=16, wkv=wkv, chunk=chunk), seed=seed)
    if perturb:
        rw.perturb_zero_init_(m, scale=0.5, seed=seed)
    return m.to(dtype)


FORMS = {
    "recurrent": rw.wkv_recurrent,
    "parallel": rw.wkv_parallel,
    "chunked": lambda w, u, k, v, **kw: rw.wkv_chunked(w, u, k, v, chunk=3, **kw),
}


# --- WKV forms -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FORMS))
def test_every_form_matches_the_naive_formula(name):
    w, u, k, v = wkv_inputs(2, 9, 5, key_spread=1.0)
    assert torch.allclose(FORMS[name](w, u, k, v), naive_wkv(w, u, k, v), atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(FORMS))
def test_gradcheck_every_form(name):
    inputs = [t.requires_grad_() for t in wkv_inputs(2, 7, 3, seed=1)]
    assert torch.autograd.gradcheck(FORMS[name], inputs, eps=1e-6, atol=1e-8)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 40),
    C=st.integers(1, 6),
    chunk=st.integers(1, 17),
    seed=st.integers(0, 2**16),
)
def test_forms_agree_on_random_shapes(B, T, C, chunk, seed):
    w, u, k, v = wkv_inputs(B, T, C, seed=seed)
    ref, s_ref = rw.wkv_recurrent(w, u, k, v, return_state=True)
    par, s_par = rw.wkv_parallel(w, u, k, v, return_state=True)
    chk, s_chk = rw.wkv_chunked(w, u, k, v, chunk=chunk, return_state=True)
    assert torch.allclose(par, ref, atol=1e-12, rtol=0)
    assert torch.allclose(chk, ref, atol=1e-12, rtol=0)
    for s in (s_par, s_chk):  # the states agree as values: aa/bb and bb·e^{pp}
        assert torch.allclose(s[0] / s[1], s_ref[0] / s_ref[1], atol=1e-11, rtol=0)
        assert torch.allclose(s[1].log() + s[2], s_ref[1].log() + s_ref[2], atol=1e-10)


def test_fp32_forms_agree():
    w, u, k, v = wkv_inputs(3, 37, 16, dtype=torch.float32, seed=2)
    ref = rw.wkv_recurrent(w, u, k, v)
    for name in ("parallel", "chunked"):
        assert float((FORMS[name](w, u, k, v) - ref).abs().max()) < 1e-5, name


@pytest.mark.parametrize("name", list(FORMS))
def test_state_carry_equals_whole_sequence(name):
    w, u, k, v = wkv_inputs(2, 13, 4, seed=3)
    whole = FORMS[name](w, u, k, v)
    a, state = FORMS[name](w, u, k[:, :5], v[:, :5], return_state=True)
    b = FORMS[name](w, u, k[:, 5:], v[:, 5:], state=state)
    assert torch.allclose(torch.cat([a, b], 1), whole, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", list(FORMS))
def test_large_keys_stay_finite(name):
    w, u, k, v = wkv_inputs(2, 20, 8, dtype=torch.float32, seed=4)
    k = 40 * k
    y = FORMS[name](w, u, k, v)
    assert torch.isfinite(y).all()
    ref = rw.wkv_recurrent(w, u, k, v)
    assert float((y - ref).abs().max()) < 1e-4
    assert float(y.abs().max()) <= float(v.abs().max()) + 1e-4  # a convex combination of v


def test_wkv_validation():
    w, u, k, v = wkv_inputs(1, 4, 3)
    with pytest.raises(ValueError, match="k and v"):
        rw.wkv_parallel(w, u, k, v[:, :2])
    with pytest.raises(ValueError, match="w and u"):
        rw.wkv_recurrent(w[:2], u, k, v)
    with pytest.raises(ValueError, match="chunk"):
        rw.wkv_chunked(w, u, k, v, chunk=0)
    with pytest.raises(ValueError, match="state aa"):
        rw.wkv_chunked(w, u, k, v, state=(torch.zeros(2, 3),) * 3)
    with pytest.raises(ValueError, match="k must be a floating"):
        rw.wkv_recurrent(w, u, k.long(), v)


def test_attention_weights_and_half_life():
    A = rw.attention_weights(-1.0, 0.3, 10).numpy()
    assert np.allclose(A.sum(1), 1) and np.all(np.triu(A, 1) == 0)
    assert np.allclose(A[-1, :-2] / A[-1, 1:-1], math.exp(-math.exp(-1.0)))
    assert float(rw.half_life(0.0)) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="time_decay"):
        rw.attention_weights(99.0, 0.0, 4)


# --- the model -------------------------------------------------------------------------------
def test_config_validation():
    with pytest.raises(ValueError, match="vocab_size"):
        rw.RWKVConfig(vocab_size=1)
    with pytest.raises(ValueError, match="wkv"):
        rw.RWKVConfig(10, wkv="fast")
    with pytest.raises(ValueError, match="n_embd"):
        rw.RWKVConfig(10, n_embd=0)
    with pytest.raises(ValueError, match="init"):
        rw.RWKV(rw.RWKVConfig(10), init="xavier")


def test_param_count_and_state_bytes():
    m = rw.RWKV(rw.RWKVConfig(77, 4, 128))
    L, C, V = 4, 128, 77
    assert m.num_params() == 13 * L * C**2 + 2 * V * C + 11 * L * C + 4 * C
    assert m.state_bytes() == 5 * L * C * 4 == m.init_state().nbytes
    assert m.state_bytes(3) == 3 * m.state_bytes()


def test_init_recipe():
    m = rw.RWKV(rw.RWKVConfig(77, 3, 16))
    att0 = m.blocks[0].att
    assert float(att0.time_decay[0].detach()) == pytest.approx(-5)
    assert float(att0.time_decay[-1].detach()) == 3
    assert float(att0.time_first[0].detach()) == pytest.approx(math.log(0.3))  # (0+1) mod 3 - 1 = 0
    assert float(att0.time_first[1].detach()) == pytest.approx(math.log(0.3) + 0.5)
    for b in m.blocks:
        for lin in (b.att.key, b.att.receptance, b.att.output, b.ffn.receptance, b.ffn.value):
            assert float(lin.weight.detach().abs().max()) == 0.0
        W = b.att.value.weight.detach()
        assert torch.allclose(W @ W.T, torch.eye(16), atol=1e-5)  # orthogonal
    assert float(m.emb.weight.detach().abs().max()) <= 1e-4
    d = rw.RWKV(rw.RWKVConfig(77, 3, 16), init="default")
    assert float(d.emb.weight.detach().std()) > 0.5
    assert float(d.blocks[0].att.output.weight.detach().abs().max()) > 0


def test_same_seed_same_model_and_different_seed_differs():
    a, b = rw.RWKV(rw.RWKVConfig(20, 1, 8), seed=3), rw.RWKV(rw.RWKVConfig(20, 1, 8), seed=3)
    c = rw.RWKV(rw.RWKVConfig(20, 1, 8), seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.emb.weight, c.emb.weight)


@pytest.mark.parametrize("form", ["chunked", "parallel", "recurrent"])
def test_parallel_equals_rnn(form):
    m = tiny_model(form)
    idx = torch.randint(0, 11, (2, 13), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        par = m(idx)
    assert float(par.std(dim=1).mean()) > 0.05  # not trivially constant along the sequence
    assert torch.allclose(par, rw.rnn_logits(m, idx), atol=1e-11, rtol=0)


def test_parallel_equals_rnn_fp32():
    m = tiny_model(dtype=torch.float32)
    idx = torch.randint(0, 11, (2, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((m(idx) - rw.rnn_logits(m, idx)).abs().max()) < 1e-4


def test_split_state():
    m = tiny_model()
    idx = torch.randint(0, 11, (3, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = m(idx)
        a, s = m(idx[:, :6], return_state=True)
        s_copy = s.clone()
        b = m(idx[:, 6:], state=s)
    assert torch.allclose(torch.cat([a, b], 1), whole, atol=1e-12, rtol=0)
    assert all(torch.equal(x, y) for x, y in zip(s.tensors(), s_copy.tensors()))  # not mutated


def test_model_gradients_match_finite_differences():
    m = tiny_model(L=1, C=4, V=5)
    idx = torch.randint(0, 5, (1, 6), generator=torch.Generator().manual_seed(3))
    p = m.blocks[0].att.time_decay

    def loss():
        return torch.nn.functional.cross_entropy(m(idx)[0], idx[0])

    grad = torch.autograd.grad(loss(), p)[0]
    eps = 1e-6
    for c in range(4):
        with torch.no_grad():
            p[c] += eps
            up = float(loss())
            p[c] -= 2 * eps
            down = float(loss())
            p[c] += eps
        assert (up - down) / (2 * eps) == pytest.approx(float(grad[c]), rel=1e-5, abs=1e-9)


def test_forward_validation():
    m = tiny_model()
    with pytest.raises(ValueError, match="idx"):
        m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="idx values"):
        m(torch.full((1, 3), 11))
    with pytest.raises(ValueError, match="state"):
        m(torch.zeros(2, 3, dtype=torch.long), state=m.init_state(3))
    with pytest.raises(ValueError, match="idx"):
        m.forward_step(torch.zeros(2, 3, dtype=torch.long), m.init_state(2))


def test_generate():
    m = tiny_model(dtype=torch.float32)
    greedy = rw.generate(m, [1, 2, 3], 8, temperature=0.0)
    with torch.no_grad():
        full = m(torch.tensor([[1, 2, 3, *greedy]]))[0]
    assert greedy == full[2:-1].argmax(-1).tolist()
    a = rw.generate(m, [1, 2], 10, temperature=1.2, top_p=0.8, seed=5)
    assert a == rw.generate(m, [1, 2], 10, temperature=1.2, top_p=0.8, seed=5)
    assert a != rw.generate(m, [1, 2], 10, temperature=1.2, top_p=0.8, seed=6)
    assert all(0 <= t < 11 for t in a) and len(a) == 10
    top1 = rw.generate(m, [4], 6, top_p=1e-9, seed=1)  # nucleus of one token = greedy
    assert top1 == rw.generate(m, [4], 6, temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        rw.generate(m, [1], 2, top_p=0.0)
    with pytest.raises(ValueError, match="prompt_ids"):
        rw.generate(m, [], 2)
    with pytest.raises(ValueError, match="temperature"):
        rw.generate(m, [1], 2, temperature=-1.0)


# --- official state dicts --------------------------------------------------------------------
def test_export_import_round_trip(tmp_path):
    m = tiny_model(dtype=torch.float32)
    sd = rw.export_state_dict(m)
    assert "blocks.0.ln0.weight" in sd and "blocks.1.ln0.weight" not in sd
    assert sd["blocks.1.att.time_mix_k"].shape == (1, 1, 8) and sd["head.weight"].shape == (11, 8)
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in sd.values())
    path = rw.save_official(m, tmp_path / "m")
    assert path.suffix == ".pth"
    again = rw.load_official_state_dict(torch.load(path), chunk=4)
    assert again.config.n_layer == 2 and again.config.n_embd == 8
    idx = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(again(idx), m(idx))
    bad = dict(sd)
    bad.pop("blocks.0.att.time_first")
    with pytest.raises(ValueError, match="missing"):
        rw.load_official_state_dict(bad)
    with pytest.raises(ValueError, match="emb.weight"):
        rw.load_official_state_dict({})


def test_against_official_package(tmp_path):
    try:
        import rwkv  # noqa: F401
    except ImportError:
        rwkv = None
    require(rwkv is not None, "the official rwkv package is not installed")
    m = tiny_model(dtype=torch.float32, C=16, L=2, V=20)
    toks = torch.randint(0, 20, (17,), generator=torch.Generator().manual_seed(0)).tolist()
    res = rw.compare_with_official(m, toks, tmp_path)
    tol = 1e-5 * max(1.0, res["scale"])
    assert res["sequence"] < tol and res["recurrent"] < tol, res


def test_default_device():
    assert rw.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- init-scale experiment and demos ---------------------------------------------------------
def test_markov_tokens():
    toks, h = rw.markov_tokens(6, 3000, 0)
    again, h2 = rw.markov_tokens(6, 3000, 0)
    assert np.array_equal(toks, again) and h == h2
    assert toks.min() >= 0 and toks.max() < 6 and 0 < h < math.log(6)
    with pytest.raises(ValueError, match="vocab_size"):
        rw.markov_tokens(1, 10)


def test_init_scale_run_is_deterministic_and_learns():
    toks, h = rw.markov_tokens(8, 2000, 1)
    cfg = rw.RWKVConfig(8, 1, 16, ctx_len=8)
    a, change = rw.init_scale_run(toks, cfg, steps=25, lr=1e-2)
    again, change2 = rw.init_scale_run(toks, cfg, steps=25, lr=1e-2)
    assert np.array_equal(a, again) and change == change2 > 0
    assert a[-5:].mean() < a[0] - 0.2 and a.min() > h - 0.5
    with pytest.raises(ValueError, match="steps"):
        rw.init_scale_run(toks, cfg, steps=0)


def test_decay_demo_updates():
    d = demos.DecayDemo(T=12)
    before = np.array(d.fig.data[0].z)
    d.controls["time_decay"].value = 2.0
    assert d.error is None and not np.allclose(before, np.array(d.fig.data[0].z))
    assert d.half_life == pytest.approx(math.log(2) / math.exp(2.0))


def test_init_scale_demo_updates():
    toks, h = rw.markov_tokens(6, 1000, 0)
    d = demos.InitScaleDemo(
        toks,
        rw.RWKVConfig(6, 1, 8, ctx_len=8),
        steps=3,
        low_exp=-2,
        high_exp=0,
        value=1e-2,
        floor=h,
    )
    assert sorted(d.curves) == [-2, -1, 0]
    before = np.array(d.fig.data[0].y)
    d.controls["emb_scale"].value = 1.0
    assert d.error is None and not np.array_equal(before, np.array(d.fig.data[0].y))
    scales, finals = d.scan()
    assert scales.tolist() == [0.01, 0.1, 1.0] and finals.shape == (3,)
    assert d.emb_change[-2] > d.emb_change[0] > 0  # a small embedding moves more, relatively


def test_figures():
    m = tiny_model(dtype=torch.float32)
    assert len(demos.half_life_figure(m).data) == 2
    assert len(demos.attention_figure([(-1.0, 0.0), (1.0, 0.5)], T=6).data) == 2
    fig = demos.equivalence_figure({"a": 1e-15}, {"a": 1e-12})
    assert len(fig.data) == 2
    with pytest.raises(ValueError, match="tolerances"):
        demos.equivalence_figure({"a": 1.0}, {"b": 1.0})
