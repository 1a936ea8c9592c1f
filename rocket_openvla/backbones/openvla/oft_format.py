"""What OpenVLA-OFT's evaluation loaders need from a policy directory, and the writers that provide it.

OFT evaluates (LIBERO `run_libero_eval.py`, the `deploy.py` server) with transformers 4.40.1, tokenizers 0.19.1 and
torch >= 2.2. For a local directory it first registers its Prismatic classes with the transformers auto classes,
points `config.json`'s `auto_map` at its own modeling code (which it copies into the directory) and loads the VLA
from the safetensors weights; then:

- `AutoProcessor.from_pretrained(dir)` reads `preprocessor_config.json`. Its `processor_class` must name
  `PrismaticProcessor` (without it the auto class falls back to a bare tokenizer, because the config class OFT's
  `auto_map` loads is not the one it registered). No `auto_map` is written: it would point at a
  `processing_prismatic.py` that the directory does not hold and that we do not want anybody to execute. The image
  processor needs `input_sizes`, `interpolations`, `means`, `stds` (it rebuilds its transform from them) and applies
  `tvf_normalize_params` when present (`ImageNormalization` writes all of them, from the constants the policy uses).
- The tokenizer is read by `AutoTokenizer` from `tokenizer_config.json` + `tokenizer.json`. transformers 5 writes
  `"tokenizer_class": "TokenizersBackend"`, a name 4.40 does not know, and tokenizers >= 0.20 write BPE merges as
  pairs `["a", "b"]`, which 0.19 cannot parse. `write_portable_tokenizer_files` names `PreTrainedTokenizerFast`
  (in both versions it loads `tokenizer.json` exactly as written, post-processor included, so BOS is added by the
  file's template; transformers 5's `LlamaTokenizer` would instead rebuild the pre-tokenizer) and writes the merges
  as `"a b"` strings, which both tokenizers versions read.
- Each head is found by listing the directory for the ONE file whose name contains the component name
  (`action_head`, `proprio_projector`, `noisy_action_projector`) and `checkpoint` (more than one is an error), read
  with `torch.load(weights_only=True)` and stripped of DDP's `module.` prefix. `save_oft_component_state_dict`
  writes exactly that file; our own safetensors copy is named so that it does not match (`checkpoint.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from rocket_openvla.files import atomic_write, write_text

logger = logging.getLogger(__name__)

PRISMATIC_PROCESSOR_CLASS = "PrismaticProcessor"  # `processor_class` of preprocessor_config.json
PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"  # known to transformers 4.40 and 5; reads tokenizer.json as is
OFT_CHECKPOINT_MARK = "checkpoint"  # OFT finds a head by this word + the component name in the file name
OFT_STATE_PREFIX = "module."  # DDP's prefix, which OFT's loader strips
TOKENIZER_CONFIG_NAME, TOKENIZER_FILE_NAME = "tokenizer_config.json", "tokenizer.json"


def oft_component_file_name(component: str, tag: str) -> str:
    """`<component>--<tag>_checkpoint.pt`, the name OFT's `finetune.py` writes and its evaluation finds."""
    return f"{component}--{tag}_{OFT_CHECKPOINT_MARK}.pt"


def save_oft_component_state_dict(
    state: Mapping[str, torch.Tensor], directory: Path, component: str, tag: str
) -> Path:
    """Write `state` as OFT's `<component>--<tag>_checkpoint.pt`: plain CPU tensors under `module.`-prefixed keys, so
    `torch.load(path, weights_only=True)` reads it on any machine. Returns the path."""
    path = directory / oft_component_file_name(component, tag)
    tensors = {f"{OFT_STATE_PREFIX}{name}": tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    atomic_write(path, lambda temporary: torch.save(tensors, temporary))
    return path


def write_portable_tokenizer_files(directory: str | Path) -> None:
    """Rewrite the tokenizer files transformers 5 saved in `directory` so that transformers 4.40 + tokenizers 0.19
    load them too, with the same ids (see the module docstring). Files that are already portable stay as they are.

    A BPE merge whose token holds a space has no `"a b"` form; the merges then stay pairs (readable by tokenizers
    >= 0.20 only) and a warning says so. Llama-style tokenizers, OpenVLA's, write spaces as "▁" and never hit this.
    """
    directory = Path(directory)
    tokenizer_file, config_file = directory / TOKENIZER_FILE_NAME, directory / TOKENIZER_CONFIG_NAME
    if not tokenizer_file.is_file():
        return
    tokenizer = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    merges = tokenizer.get("model", {}).get("merges") or []
    pairs = [merge for merge in merges if not isinstance(merge, str)]
    with_space = [pair for pair in pairs if any(" " in token for token in pair)]
    if with_space:
        logger.warning(
            "%s: BPE merges such as %r contain a space and cannot be written as 'a b' strings; they stay pairs, which "
            "tokenizers < 0.20 (OpenVLA-OFT's 0.19) cannot read", tokenizer_file, with_space[0]
        )
    elif pairs:
        tokenizer["model"]["merges"] = [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]
        write_text(tokenizer_file, json.dumps(tokenizer, ensure_ascii=False, indent=2))
    if config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if config.get("tokenizer_class") != PORTABLE_TOKENIZER_CLASS:
            config["tokenizer_class"] = PORTABLE_TOKENIZER_CLASS
            write_text(config_file, json.dumps(config, ensure_ascii=False, indent=2))
