"""`python -m src.export`: TFLite (or ONNX) conversion, checked against Keras before the file is written."""
