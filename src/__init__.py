"""Zero-DCE low-light enhancement on LOL, tracked with DVC and MLflow."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) buries our progress output;
# users can still turn it back on by setting the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
