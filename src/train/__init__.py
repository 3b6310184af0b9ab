"""Training: the Trainer's steps, the resumable epoch loop, checkpoints, and one tracked run
(MLflow + model files).
"""
