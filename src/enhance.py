"""`python -m src.enhance`: enhance photos (src.infer.enhance)."""

from src.infer.enhance import main

if __name__ == "__main__":
    raise SystemExit(main())
