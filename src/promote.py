"""`python -m src.promote`: register and promote a run's model (src.tracking.promote)."""

from src.tracking.promote import main


def cli() -> int:
    """The console script: `main` returns the decision (for callers), the shell wants a status."""
    main()
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
