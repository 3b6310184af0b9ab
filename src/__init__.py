"""Zero-DCE low-light enhancement on LOL, tracked with DVC and MLflow."""
