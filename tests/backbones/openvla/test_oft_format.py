"""A saved OpenVLA policy directory in the form OpenVLA-OFT's evaluation loaders read (transformers 4.40.1,
tokenizers 0.19.1, `torch.load` of the heads), and still read by ours, old run directories included.

The last test runs the real old stack in the side environment of `scripts/setup_oft_env.sh` (skipped without it).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer, models
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from rocket_openvla.backbones.openvla.checkpoint import find_component_file, save_component_state_dict
from rocket_openvla.backbones.openvla.oft_format import write_portable_tokenizer_files
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.backbones.openvla.processing_openvla import ImageNormalization, OpenVLAProcessor
from rocket_openvla.backbones.openvla.prompting import build_prompt
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer
from rocket_openvla.errors import ConfigError
from tests.backbones.openvla.test_policy import prompt_of_sample_0

ROOT = Path(__file__).resolve().parents[3]
OFT_ENV = Path(os.environ.get("OFT_ENV", ROOT / ".venv-oft"))
HEADS = ("action_head", "proprio_projector")  # the golden policy's (L1 head, proprio)
TEXTS = [
    build_prompt("pick up the black bowl between the plate and the ramekin and place it on the plate"),
    build_prompt("put both the alphabet soup and the tomato sauce in the basket"),
    build_prompt("Turn ON the stove, then wait 3 s!  (twice)"),
    build_prompt("place the mug à côté du four — 日本"),
    "  leading and trailing spaces  ",
]


def oft_finds(directory: Path, component: str) -> list[str]:
    """OFT's lookup of a head file, from its description: every file name in the directory that contains both the
    component name and the word "checkpoint" (OFT requires exactly one)."""
    return [name for name in os.listdir(directory) if component in name and "checkpoint" in name]


def llama_style_tokenizer_dir(directory: Path) -> Path:
    """The tiny vocabulary in the layout of openvla/openvla-7b's tokenizer files: `LlamaTokenizer`, BOS by the
    config's `add_bos_token`, Llama-2's normaliser (prepend "▁", spaces to "▁"), merges as strings."""
    tokenizer = json.loads(build_tiny_tokenizer().backend_tokenizer.to_str())
    tokenizer["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    tokenizer["pre_tokenizer"] = None
    tokenizer["model"]["merges"] = [" ".join(pair) for pair in tokenizer["model"]["merges"]]
    config = {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
              "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<PAD>",
              "model_max_length": 2048, "padding_side": "right"}
    directory.mkdir(parents=True)
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="module")
def processors(tmp_path_factory) -> dict[str, OpenVLAProcessor]:
    """The tiny tokenizer as built, and a Llama-style one as transformers 5 loads openvla-7b's (it rebuilds it)."""
    llama_dir = llama_style_tokenizer_dir(tmp_path_factory.mktemp("llama") / "tokenizer")
    return {"tiny": OpenVLAProcessor(build_tiny_tokenizer()),
            "llama-style": OpenVLAProcessor(AutoTokenizer.from_pretrained(llama_dir))}


@pytest.fixture(scope="module")
def saved(tmp_path_factory, golden_policy, processors) -> dict[str, Path]:
    """Merged-policy directories: the golden (non-LoRA) policy + each processor, as `OpenVLAAdapter` saves them."""
    directories = {}
    for name, processor in processors.items():
        directory = tmp_path_factory.mktemp("oft") / name
        golden_policy.save_pretrained(directory)
        processor.save_pretrained(directory)
        directories[name] = directory
    return directories


def action_token_text(processor: OpenVLAProcessor) -> str:
    ids = processor.action_tokenizer.encode(torch.linspace(-1, 1, 7)[None]).reshape(-1).tolist()
    return "".join(processor.tokenizer.convert_ids_to_tokens(ids))


def expected_ids(processor: OpenVLAProcessor) -> list[list[int]]:
    return [processor.tokenizer(text).input_ids for text in [*TEXTS, TEXTS[0] + action_token_text(processor)]]


@pytest.mark.parametrize("kind", ["tiny", "llama-style"])
def test_tokenizer_files_are_portable_and_tokenize_as_before(saved, processors, kind):
    directory, processor = saved[kind], processors[kind]
    assert json.loads((directory / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    merges = json.loads((directory / "tokenizer.json").read_text())["model"]["merges"]
    assert merges and all(isinstance(merge, str) and len(merge.split(" ")) == 2 for merge in merges)

    reloaded = AutoTokenizer.from_pretrained(directory)
    assert [reloaded(text).input_ids for text in [*TEXTS, TEXTS[0] + action_token_text(processor)]] == \
        expected_ids(processor)
    assert all(ids[0] == reloaded.bos_token_id == 1 for ids in expected_ids(processor))
    assert (reloaded.pad_token_id, reloaded.eos_token_id, reloaded.padding_side) == (32000, 2, "right")
    sample = {"images": np.zeros((2, 224, 224, 3), np.uint8), "instruction": "open the top drawer",
              "actions": np.linspace(-1, 1, 56, dtype=np.float32).reshape(8, 7), "dataset_name": "d"}
    assert torch.equal(OpenVLAProcessor(reloaded)(sample)["input_ids"], processor(sample)["input_ids"])


def test_preprocessor_config_is_complete_for_the_prismatic_processor(saved, processors):
    config = json.loads((saved["tiny"] / "preprocessor_config.json").read_text())
    assert config["processor_class"] == "PrismaticProcessor"
    assert config["image_processor_type"] == "PrismaticImageProcessor"
    assert {"input_sizes", "interpolations", "means", "stds", "tvf_normalize_params"} <= set(config)
    assert "auto_map" not in config  # nothing for anybody's loader to execute
    assert ImageNormalization.from_pretrained(saved["tiny"]) == processors["tiny"].normalization


def test_heads_are_found_and_read_as_oft_does(saved, golden_policy):
    directory = saved["tiny"]
    for component in HEADS:
        found = oft_finds(directory, component)
        assert found == [f"{component}--latest_checkpoint.pt"]
        state = torch.load(directory / found[0], map_location="cpu", weights_only=True)
        assert all(key.startswith("module.") for key in state)
        expected = getattr(golden_policy, component).state_dict()
        stripped = {key.removeprefix("module."): tensor for key, tensor in state.items()}
        assert stripped.keys() == expected.keys()
        assert all(torch.equal(stripped[key], expected[key]) for key in expected)
        ours = load_file(directory / f"{component}--latest.safetensors")  # our copy, which OFT's lookup skips
        assert ours.keys() == expected.keys() and all(torch.equal(ours[key], expected[key]) for key in expected)


def predicted_actions(policy: OpenVLAPolicy, golden) -> torch.Tensor:
    return policy.predict_action(**prompt_of_sample_0(golden["inputs"])).actions


def test_our_loader_reads_the_merged_directory_in_each_form(saved, golden, golden_policy, tmp_path):
    expected = predicted_actions(golden_policy, golden)
    assert torch.equal(predicted_actions(OpenVLAPolicy.from_pretrained(saved["tiny"]), golden), expected)

    only_oft = shutil.copytree(saved["tiny"], tmp_path / "only_oft")
    for file in only_oft.glob("*--latest.safetensors"):
        file.unlink()
    assert find_component_file(only_oft, "action_head").name == "action_head--latest_checkpoint.pt"
    assert torch.equal(predicted_actions(OpenVLAPolicy.from_pretrained(only_oft), golden), expected)

    old_style = shutil.copytree(saved["tiny"], tmp_path / "old_style")  # what runs wrote before the OFT export
    for component in HEADS:
        (old_style / f"{component}--latest_checkpoint.pt").unlink()
        ours = old_style / f"{component}--latest.safetensors"
        ours.rename(old_style / f"{component}--latest_checkpoint.safetensors")
    assert torch.equal(predicted_actions(OpenVLAPolicy.from_pretrained(old_style), golden), expected)


def test_saving_leaves_one_file_per_form_and_refuses_ambiguity(tmp_path):
    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    save_component_state_dict(state, tmp_path, "action_head", "step_1", oft_copy=True)
    save_component_state_dict(state, tmp_path, "action_head", "step_2", oft_copy=True)
    assert sorted(os.listdir(tmp_path)) == ["action_head--step_2.safetensors", "action_head--step_2_checkpoint.pt"]
    save_component_state_dict(state, tmp_path, "action_head", "step_3", oft_copy=False)
    assert os.listdir(tmp_path) == ["action_head--step_3.safetensors"] and oft_finds(tmp_path, "action_head") == []

    torch.save(state, tmp_path / "action_head--150000_checkpoint.pt")  # an OFT head of another step beside ours
    with pytest.raises(ConfigError, match="files of different steps"):
        find_component_file(tmp_path, "action_head")
    with pytest.raises(ConfigError, match="tag='best_checkpoint'"):
        save_component_state_dict(state, tmp_path, "action_head", "best_checkpoint", oft_copy=True)


def test_merges_with_a_space_have_no_string_form_and_stay_pairs(tmp_path, caplog):
    backend = Tokenizer(models.BPE(vocab={"a": 0, " ": 1, "a ": 2}, merges=[("a", " ")]))
    PreTrainedTokenizerFast(tokenizer_object=backend).save_pretrained(tmp_path)
    with caplog.at_level("WARNING"):
        write_portable_tokenizer_files(tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["merges"] == [["a", " "]]
    assert "contain a space" in caplog.text
    assert AutoTokenizer.from_pretrained(tmp_path)("a ").input_ids == [2]


OLD_STACK_SCRIPT = r"""
import json, sys
import tokenizers, torch, transformers
from safetensors.torch import save_file
from transformers import AutoTokenizer

request, results = json.loads(sys.argv[1]), {"versions": [transformers.__version__, tokenizers.__version__]}
for kind, (directory, texts, heads_out) in request.items():
    tokenizer = AutoTokenizer.from_pretrained(directory)
    heads = {}
    for name in ("action_head", "proprio_projector"):
        state = torch.load(f"{directory}/{name}--latest_checkpoint.pt", weights_only=True)
        heads.update({f"{name}.{key.removeprefix('module.')}": tensor for key, tensor in state.items()})
    save_file(heads, heads_out)
    results[kind] = {"class": type(tokenizer).__name__, "pad": tokenizer.pad_token_id,
                     "ids": [tokenizer(text).input_ids for text in texts]}
print(json.dumps(results))
"""


@pytest.mark.skipif(not (OFT_ENV / "bin" / "python").is_file(),
                    reason=f"no OpenVLA-OFT side environment at {OFT_ENV}: run scripts/setup_oft_env.sh")
def test_openvla_oft_stack_reads_the_saved_directories(saved, processors, golden_policy, tmp_path):
    """transformers 4.40.1 + tokenizers 0.19.1 tokenize as we do; `torch.load(weights_only=True)` reads the heads."""
    texts = {kind: [*TEXTS, TEXTS[0] + action_token_text(processor)] for kind, processor in processors.items()}
    request = {kind: [str(saved[kind]), texts[kind], str(tmp_path / f"{kind}.safetensors")] for kind in saved}
    completed = subprocess.run([str(OFT_ENV / "bin" / "python"), "-c", OLD_STACK_SCRIPT, json.dumps(request)],
                               capture_output=True, text=True, timeout=120, check=False,
                               env={**os.environ, "USE_TF": "0"})  # transformers 4.40 must not import TensorFlow
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results["versions"] == ["4.40.1", "0.19.1"]
    expected_heads = {f"{name}.{key}": tensor
                      for name in HEADS for key, tensor in getattr(golden_policy, name).state_dict().items()}
    for kind, processor in processors.items():
        assert (results[kind]["class"], results[kind]["pad"]) == ("PreTrainedTokenizerFast", 32000)
        assert results[kind]["ids"] == expected_ids(processor)
        heads = load_file(tmp_path / f"{kind}.safetensors")
        assert heads.keys() == expected_heads.keys()
        assert all(torch.equal(heads[key], expected_heads[key]) for key in expected_heads)
