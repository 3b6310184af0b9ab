"""DVC stage `fetch`: download (or copy) the LOL dataset and verify it against the manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from src.config import load_params
from src.data.fetch import fetch_dataset
from src.data.manifest import manifest_digest, read_manifest
from src.errors import cli_entry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder that receives lol_dataset/")
    parser.add_argument(
        "--downloads", type=Path, required=True, help="cache for the downloaded zip (kept between runs)"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


@cli_entry
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = load_params(args.params).fetch
    dataset = fetch_dataset(cfg, args.out, args.downloads)
    count = len(read_manifest(cfg.manifest))
    version = manifest_digest(cfg.manifest)[:12]
    print(f"fetch: {count} files verified against {cfg.manifest} (data version {version}) -> {dataset}")


if __name__ == "__main__":
    main()
