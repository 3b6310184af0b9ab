"""`python -m src.tune`: the Optuna search (src.tune.cli)."""

from src.tune.cli import main

if __name__ == "__main__":
    main()
