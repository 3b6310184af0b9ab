"""`python -m src.tune`: the Optuna search (src.tune.study)."""

from src.tune.study import main

if __name__ == "__main__":
    main()
