"""`python -m src.bench`: the speed benchmark (src.bench.cli)."""

from src.bench.cli import main

if __name__ == "__main__":
    main()
