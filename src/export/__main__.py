"""`python -m src.export`: TFLite / ONNX export (src.export.exporter)."""

from src.export.exporter import main

if __name__ == "__main__":
    raise SystemExit(main())
