"""DVC stage `promote`: register the evaluated model; champion only if it beats the current one.

All logic lives in `src.tracking.promote` (also runnable as `python -m src.promote`); this entry point
exists so that every stage of dvc.yaml is `python -m stages.<name>`.
"""

from src.tracking.promote import main

if __name__ == "__main__":
    main()
