"""Choose ROCKET layer pairs without training, ready to paste into a finetune command.

    python vla-scripts/select_layers.py                                 # OpenVLA-7B (32 blocks) x VGGT-1B (24)
    python vla-scripts/select_layers.py --student_blocks 18 --student_last final_norm   # PaliGemma-3B (PI0)
    python vla-scripts/select_layers.py --cka runs/x/profiling/cka.json --num_pairs 8   # + CKA pairings

Strategies: E2M-Last (the paper's default: early-to-middle layers plus the last), Uniform-k (the release's balanced
spacing) and, with a CKA profile of `profile_alignment.py --tool cka`, the order-preserving matching with the largest
total CKA and the release's unordered Hungarian assignment. Writes selection.json (and selection.png) beside the
profile, or to --output_dir.
"""

from rocket_openvla.cli import parse_config, run_entry_point
from rocket_openvla.profiling.config import SelectLayersConfig


def main() -> None:
    config = parse_config(SelectLayersConfig)

    from rocket_openvla.profiling.runner import SELECTION_NAME, select_layers

    record = select_layers(config)
    for name, choice in record["strategies"].items():
        total = "" if choice["cka_total"] is None else f"   (total CKA {choice['cka_total']:.3f})"
        print(f"{name}:{total}\n  {choice['cli']}")
    print(f"record: {config.resolved_output_dir / SELECTION_NAME}.json")


if __name__ == "__main__":
    run_entry_point(main)
