"""`python -m src.export`: TFLite / ONNX export (src.export.cli)."""

from src.export.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
