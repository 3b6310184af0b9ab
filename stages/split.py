"""DVC stage `split`: pair the LOL images and write train/val/test/unused CSVs plus a summary."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.config import load_params
from src.data.split import find_pairs, split_pairs, write_split
from src.errors import cli_entry
from src.files import atomic_write_text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="the lol_dataset folder (our485/, eval15/)")
    parser.add_argument("--out", type=Path, required=True, help="folder for {train,val,test,unused}.csv")
    parser.add_argument("--summary", type=Path, required=True, help="JSON with the counts and the seed")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = load_params(args.params).split
    splits = split_pairs(find_pairs(args.data), cfg)
    summary = write_split(splits, args.out, seed=cfg.seed)
    atomic_write_text(args.summary, json.dumps(summary, indent=2) + "\n")
    counts, held_out = summary["counts"], summary["by_subset"]["test"]["eval15"]
    print(
        f"split (seed {cfg.seed}): train {counts['train']}, val {counts['val']}, "
        f"test {counts['test']} ({held_out} eval15), unused {counts['unused']} -> {args.out}"
    )


if __name__ == "__main__":
    main()
