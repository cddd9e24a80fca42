"""Notebook 07 figures and demos: training curves, sampling, decoding cost, recall probe.

Figure builders return ``go.Figure`` (never shown here). :class:`LiveLossPlot` is a training
callback that redraws a ``FigureWidget`` after each evaluation; :class:`SampleDemo` samples text
from a model in RNN mode (prompt box, temperature, length, seed) and shows the next-character
distribution p_T(c) = softmax(logits / T)_c after the prompt next to the sampled continuation.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W
import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import display
from plotly.subplots import make_subplots

from .._validate import check_int, check_real
from ..core import static_mode
from ..plots import color, figure, subplots
from ..rwkv.data import CharVocab
from ..rwkv.gpt import GPT, generate_gpt
from ..rwkv.model import generate
from ..rwkv.train import History
from ..widgets import Demo, float_slider, int_slider

__all__ = [
    "loss_figure",
    "LiveLossPlot",
    "decode_figure",
    "recall_figure",
    "SampleDemo",
    "sample_text",
    "smooth",
]


def smooth(values: Sequence[float], window: int = 20) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start)."""
    window = check_int("window", window, 1)
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.minimum(np.arange(1, v.size + 1), window)
    return (c[1:] - c[np.arange(1, v.size + 1) - n]) / n


def _add_history(fig: go.Figure, name: str, h: History, i: int, x: str) -> None:
    tx = h.time_s if x == "time" else h.step
    vx = h.val_time_s if x == "time" else h.val_step
    fig.add_scatter(
        x=tx,
        y=smooth(h.train_loss),
        mode="lines",
        name=f"{name} train",
        line={"color": color(i), "width": 1.5},
        opacity=0.6,
    )
    fig.add_scatter(
        x=vx,
        y=h.val_loss,
        mode="lines+markers",
        name=f"{name} validation",
        line={"color": color(i), "width": 2.5},
    )


def loss_figure(
    histories: Mapping[str, History], *, x: str = "time", target: float | None = None
) -> go.Figure:
    """Train (moving average) and validation loss in nats/char against training time (s) or
    step, one colour per model; an optional dashed ``target`` line."""
    if x not in ("time", "step"):
        raise ValueError(f"x must be 'time' or 'step', got {x!r}")
    fig = figure(
        "Character-level loss (nats/char)",
        "training time (s)" if x == "time" else "step",
        "cross-entropy (nats/char)",
    )
    for i, (name, h) in enumerate(histories.items()):
        _add_history(fig, name, h, i, x)
    if target is not None:
        fig.add_hline(
            y=target, line={"dash": "dash", "color": "grey"}, annotation_text=f"target {target:g}"
        )
    return fig


class LiveLossPlot:
    """A live loss plot: pass it as ``callback=`` to :func:`course_lib.rwkv.train.train`.

    Displaying the object shows the ``FigureWidget`` (nothing in static mode, where the notebook
    shows :func:`loss_figure` afterwards); each call redraws the named model's curves.
    """

    def __init__(self, names: Sequence[str], title: str = "Training (live)"):
        self.names = list(names)
        fig = figure(title, "training time (s)", "cross-entropy (nats/char)")
        for i, n in enumerate(self.names):
            _add_history(fig, n, History(), i, "time")
        self.fig = go.FigureWidget(fig)
        self.n_updates = 0

    def callback(self, name: str):
        """The ``callback(history)`` for model ``name``."""
        i = self.names.index(name)

        def update(h: History) -> None:
            with self.fig.batch_update():
                self.fig.data[2 * i].x, self.fig.data[2 * i].y = h.time_s, smooth(h.train_loss)
                self.fig.data[2 * i + 1].x, self.fig.data[2 * i + 1].y = h.val_time_s, h.val_loss
            self.n_updates += 1

        return update

    def _ipython_display_(self) -> None:
        if not static_mode():
            display(self.fig)


def decode_figure(profiles: Mapping[str, Mapping[str, Sequence[float]]]) -> go.Figure:
    """Two panels against context length (log-log): decode time per token (ms) and the bytes
    of the recurrent state / KV cache, one colour per model."""
    fig = subplots(
        ["time per generated token", "state / cache memory"],
        ["context length (tokens)"] * 2,
        ["ms per token", "bytes"],
        log_x=[True, True],
        log_y=[True, True],
        title="Decoding one token after n tokens of context",
    )
    for i, (name, p) in enumerate(profiles.items()):
        kw = {"mode": "lines+markers", "line": {"color": color(i)}, "legendgroup": name}
        fig.add_scatter(x=p["context"], y=p["ms_per_token"], name=name, row=1, col=1, **kw)
        fig.add_scatter(
            x=p["context"], y=p["state_bytes"], name=name, showlegend=False, row=1, col=2, **kw
        )
    return fig


def recall_figure(
    n_pairs: Sequence[int], accuracy: Mapping[str, Sequence[float]], chance: float
) -> go.Figure:
    """Associative-recall accuracy against the number of key-value pairs, one line per model."""
    fig = figure(
        "Multi-query associative recall", "key-value pairs in the sequence", "query accuracy"
    )
    for i, (name, acc) in enumerate(accuracy.items()):
        fig.add_scatter(
            x=list(n_pairs), y=list(acc), mode="lines+markers", name=name, line={"color": color(i)}
        )
    fig.add_hline(y=chance, line={"dash": "dot", "color": "grey"}, annotation_text="chance")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def sample_text(
    model: torch.nn.Module,
    vocab: CharVocab,
    prompt: str,
    n_chars: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
) -> str:
    """Sample ``n_chars`` characters after ``prompt`` (RWKV: RNN mode; GPT: KV cache)."""
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    ids = vocab.encode(prompt).tolist()
    gen = generate_gpt if isinstance(model, GPT) else generate
    return vocab.decode(gen(model, ids, n_chars, temperature=temperature, seed=seed))


def _wrap_html(text: str, width: int = 90) -> str:
    """HTML for a table cell: escaped, newlines as <br>, lines hard-wrapped at ``width``."""
    lines = [
        line[i : i + width] for line in text.split("\n") for i in range(0, max(len(line), 1), width)
    ]
    return "<br>".join(html.escape(line) for line in lines)


class SampleDemo(Demo):
    """Prompt box, temperature, length and seed → next-character distribution and a sample.

    ``models`` maps a label (e.g. "before training", "after training") to a model; each is
    sampled with the same prompt, temperature and seed.
    """

    def __init__(
        self,
        models: Mapping[str, torch.nn.Module],
        vocab: CharVocab,
        *,
        prompt: str = "ROMEO:\n",
        temperature: float = 0.8,
        n_chars: int = 100,
        seed: int = 0,
        top_k: int = 15,
    ):
        if not models:
            raise ValueError("models must map at least one label to a model")
        self.models = dict(models)
        self.vocab = vocab
        self.top_k = check_int("top_k", top_k, 1, vocab.size)
        self.samples: dict[str, str] = {}
        vocab.encode(prompt)  # validates the prompt's characters
        check_real("temperature", temperature, 0.05, 2.0)
        fig = make_subplots(
            rows=2,
            cols=1,
            row_heights=[0.4, 0.6],
            vertical_spacing=0.1,
            specs=[[{"type": "xy"}], [{"type": "table"}]],
        )
        for i, label in enumerate(self.models):
            fig.add_bar(x=[], y=[], name=label, marker={"color": color(i)}, row=1, col=1)
        fig.add_table(
            header={"values": ["model", "text"], "align": "left"},
            cells={
                "values": [[], []],
                "align": "left",
                "font": {"family": "monospace", "size": 11},
            },
            columnwidth=[1, 6],
            row=2,
            col=1,
        )
        fig.update_layout(
            barmode="group",
            height=560,
            template="plotly_white",
            margin={"l": 60, "r": 20, "t": 60, "b": 20},
        )
        fig.update_yaxes(title_text="p_T(next character)", row=1, col=1)
        fig.update_layout(
            title={"text": "Next character after the prompt, and a sample", "x": 0.02}
        )
        controls = {
            "prompt": W.Text(
                value=prompt,
                description="prompt",
                continuous_update=False,
                layout={"width": "380px"},
                style={"description_width": "110px"},
            ),
            "temperature": float_slider("temperature T", 0.05, 2.0, temperature, 0.05),
            "n_chars": int_slider("characters", 10, 200, n_chars, 10),
            "seed": int_slider("seed", 0, 99, seed),
        }
        super().__init__(controls, fig, title="Sample from the model (RNN mode)")

    def redraw(self, prompt: str, temperature: float, n_chars: int, seed: int, **_: Any) -> None:
        prompt = prompt.replace("\\n", "\n")
        if not prompt:
            raise ValueError("prompt must be a non-empty string")
        ids = torch.tensor([self.vocab.encode(prompt).tolist()])
        top = None
        for i, (label, model) in enumerate(self.models.items()):
            with torch.no_grad():
                logits = model(ids[:, -getattr(model.config, "ctx_len", ids.shape[1]) :])[0, -1]
            p = torch.softmax(logits.double() / temperature, -1).numpy()
            if top is None:
                top = np.argsort(-p)[: self.top_k]
            self.fig.data[i].x = [repr(self.vocab.chars[j])[1:-1] for j in top]
            self.fig.data[i].y = p[top]
            self.samples[label] = sample_text(
                model, self.vocab, prompt, n_chars, temperature=temperature, seed=seed
            )
        texts = [_wrap_html(prompt + t) for t in self.samples.values()]
        self.fig.data[-1].cells.values = [list(self.samples), texts]
