"""Zero-DCE low-light enhancement on LOL, tracked with DVC and MLflow."""

from src import quiet_tensorflow

# Every command and stage imports this package first: hook TensorFlow's start-up banners
# before anything imports TensorFlow (TF_CPP_MIN_LOG_LEVEL=0 shows them again).
quiet_tensorflow.install()
