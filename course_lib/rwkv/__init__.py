"""A tiny RWKV-4 language model built from scratch (notebooks 06 and 07).

* :mod:`course_lib.rwkv.model`: the model (config, the three WKV forms, blocks, parallel and
  recurrent forward, init recipe, generation, official RWKV-LM state dicts, device selection).
* ``data``, ``train``, ``gpt`` (notebook 07): data, training loop and a GPT baseline.

The model's public names are re-exported here: ``from course_lib.rwkv import RWKV, RWKVConfig``.
"""

from .model import (
    RWKV,
    WKV_FORMS,
    RWKVConfig,
    RWKVState,
    default_device,
    export_state_dict,
    generate,
    load_official_state_dict,
    save_official,
    wkv_chunked,
    wkv_parallel,
    wkv_recurrent,
)

__all__ = [
    "RWKV",
    "WKV_FORMS",
    "RWKVConfig",
    "RWKVState",
    "default_device",
    "export_state_dict",
    "generate",
    "load_official_state_dict",
    "save_official",
    "wkv_chunked",
    "wkv_parallel",
    "wkv_recurrent",
]
