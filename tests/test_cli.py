"""The finetune entry point as a user meets it: `--help`, and bad configs reported once, without a traceback."""

import dataclasses
import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from rocket_openvla.training.config import FinetuneConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "vla-scripts" / "finetune_rocket.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "WANDB_MODE": "disabled"}


def run(*command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=ENV, timeout=timeout)


def leaf_options(config_class: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """`--section.field` -> field for every non-dataclass field, through nested dataclasses."""
    hints = typing.get_type_hints(config_class)
    options = {}
    for field in dataclasses.fields(config_class):
        kind = hints[field.name]
        name = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            options.update(leaf_options(kind, f"{name}."))
        else:
            options[f"--{name}"] = field
    return options


@pytest.fixture(scope="module")
def help_text() -> str:
    result = run(sys.executable, str(SCRIPT), "--help")
    assert result.returncode == 0, result.stderr
    return result.stdout


def option_help(help_text: str, option: str) -> str:
    """The help paragraph of `option` (the lines after its name up to the next option or group)."""
    match = re.search(rf"^  {re.escape(option)}\b(.*?)(?=^  --|^\S|\Z)", help_text, flags=re.M | re.S)
    assert match, f"{option} is missing from --help"
    return " ".join(match.group(1).split())


def test_help_describes_every_field_with_its_default(help_text):
    from rocket_openvla.backbones import BackboneConfig
    from rocket_openvla.teachers.registry import TeacherConfig

    options = leaf_options(FinetuneConfig)
    for section, registry in (("backbone", BackboneConfig), ("teacher", TeacherConfig)):
        for choice in registry.get_known_choices().values():
            options.update({f"--{section}.{k[2:]}": v for k, v in leaf_options(choice).items()})
    for option in options:
        if option in ("--backbone", "--teacher"):
            continue
        text = option_help(help_text, option)
        description = text.split("(default:")[0].split(maxsplit=1)[-1] if "(default:" in text else ""
        assert "(default:" in text and len(description) > 10, f"{option}: {text!r}"
    assert "[2,4,6,8,10,12,14,16,18,31]" in option_help(help_text, "--rocket.student_layers")
    assert "e.g. [0.9,0.999]" in option_help(help_text, "--optim.betas")
    assert "{" + ",".join(BackboneConfig.get_known_choices()) + "}" in help_text
    assert "{vggt,vggt_random,hf}" in help_text


def test_help_and_validation_import_no_model_code():
    code = (
        "import runpy, sys\n"
        f"sys.argv = [{str(SCRIPT)!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LOADED', sorted(m for m in ('transformers', 'peft', 'timm', 'tensorflow', 'wandb') "
        "if m in sys.modules))\n"
    )
    result = run(sys.executable, "-c", code)
    assert result.stdout.strip().splitlines()[-1] == "LOADED []"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--rocket.coeff", "-1"], "error: rocket.coeff=-1.0; use a weight >= 0"),
        (["--optim.lr", "0"], "error: optim.lr=0.0; use a positive learning rate"),
        (["--run.log_freq", "0"], "error: run.log_freq=0; use a positive value"),
        (["--backbone.policy.action_head", "mse"], "error: backbone.policy.action_head='mse'"),
        (["--run.max_steps", "many"], "error: `run.max_steps`: Couldn't parse 'many' into an int"),
    ],
)
def test_a_bad_config_is_one_message_and_exit_status_2(arguments, message):
    result = run(sys.executable, str(SCRIPT), "--config_path", "configs/quickstart.yaml", *arguments)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message + result.stderr.strip().split(message, 1)[1]]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_under_torchrun_the_error_appears_once():
    result = run(str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(SCRIPT),
                 "--config_path", "configs/quickstart.yaml", "--rocket.coeff", "-1")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("rocket.coeff=-1.0") == 1, output
    assert "rocket_openvla" not in output.split("rocket.coeff=-1.0")[1].split("\n", 1)[1]  # no frames of ours
    assert re.search(r"exitcode\s*:\s*2", output)  # the workers' status, in torchrun's own summary


def test_unknown_arguments_are_reported_once_under_torchrun():
    result = run(str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(SCRIPT), "--no_such_field", "1")
    output = result.stdout + result.stderr
    assert output.count("unrecognized arguments: --no_such_field 1") == 1, output
