"""Training under tf.distribute.MirroredStrategy gives what one device gives.

Two logical CPUs stand in for two GPUs; they must be configured before TensorFlow
starts, hence a fresh process per check.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys, tempfile, pathlib
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path[:0] = ["tests", "."]
import numpy as np
from tests.support.pipeline import tiny_params
from src.train.trainer import Trainer

params = tiny_params(batch_size=4, grad_clip_norm=CLIP)
single = Trainer(params)
mirrored = Trainer(params, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
mirrored.model.set_weights(single.model.get_weights())
rng = np.random.default_rng(0)
batch = (rng.random((4, 32, 32, 3)) * np.array([0.1, 0.3, 0.6, 0.9])[:, None, None, None]).astype("float32")
split = next(iter(mirrored.distribute(tf.data.Dataset.from_tensors(batch))))

_, expected = tf.function(single.batch_gradients)(tf.constant(batch))
per_replica = tf.function(lambda b: mirrored.strategy.run(mirrored.batch_gradients, args=(b,)))(split)
replica_grads = [mirrored.strategy.experimental_local_results(g) for g in per_replica[1]]
grad_diff = max(float(np.abs(r - e).max()) for rs, e in zip(replica_grads, expected) for r in rs)
grad_scale = max(float(np.abs(e).max()) for e in expected)

before = [w.copy() for w in single.model.get_weights()]
loss_single = float(single.train_step(tf.constant(batch))["total"])
loss_mirrored = float(mirrored.train_step(split)["total"])
moved = max(float(np.abs(a - b).max()) for a, b in zip(single.model.get_weights(), before))
weight_diff = max(
    float(np.abs(a - b).max()) for a, b in zip(single.model.get_weights(), mirrored.model.get_weights())
)
print(json.dumps({
    "replicas": mirrored.strategy.num_replicas_in_sync, "grad_diff": grad_diff, "grad_scale": grad_scale,
    "loss_single": loss_single, "loss_mirrored": loss_mirrored, "moved": moved, "weight_diff": weight_diff,
}))
"""


def run_check(clip: float) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("CLIP", repr(clip))],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_replicas_see_the_whole_batch_gradient_and_take_the_same_step():
    """With a clip that binds, a per-replica clip (Keras 3's own) would double the step."""
    result = run_check(clip=0.001)
    assert result["replicas"] == 2
    assert result["grad_scale"] > 0
    assert result["grad_diff"] <= 1e-6 * max(1.0, result["grad_scale"]) + 1e-8
    assert abs(result["loss_single"] - result["loss_mirrored"]) <= 1e-5 * abs(result["loss_single"])
    assert result["moved"] > 1e-6, "the step must change the weights"
    assert result["weight_diff"] <= 1e-3 * result["moved"]
