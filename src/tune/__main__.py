"""`python -m src.tune`: the Optuna search (src.tune.cli)."""

from src.errors import cli_entry


@cli_entry
def _main() -> None:
    # Stop signals are handled from here on (`src.signals`), before the import of Optuna and the
    # CLI, which takes a second or two: a worker stopped as it starts exits as cleanly as later.
    from src.tune.cli import main

    main()


if __name__ == "__main__":
    _main()
