"""`python -m src.bench`: the speed benchmark (src.bench.benchmark)."""

from src.bench.benchmark import main

if __name__ == "__main__":
    main()
