"""One command per stage at a time: the second stops in about a second with one line naming the
holder, and a lock whose process was killed is taken over."""

import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from src.errors import PipelineError
from src.stage_lock import held
from tests.support.pipeline import tiny_params, tiny_params_dict, tiny_split
from tests.support.processes import command_env

SINCE = r"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \S*"
REFUSAL = r"another {what} is running \(pid {pid}, since " + SINCE + r"\); wait for it or stop it"


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    with held("train", "training", tmp_path):
        with pytest.raises(PipelineError) as refused, held("train", "training", tmp_path):
            pass
        with held("evaluate", "evaluation", tmp_path):  # another stage's lock is another lock
            pass
    assert re.fullmatch(REFUSAL.format(what="training", pid=os.getpid()), str(refused.value))
    with held("train", "training", tmp_path):  # released with the block
        pass


def test_a_lock_whose_process_was_killed_is_taken_over(tmp_path):
    """SIGKILL runs no cleanup: the holder's note stays, but the kernel has dropped its flock."""
    script = (
        "import os, signal, sys; from pathlib import Path; from src.stage_lock import held\n"
        "with held('train', 'training', Path(sys.argv[1])):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=command_env(), check=False)
    assert killed.returncode == -9
    assert (tmp_path / "train.json").is_file(), "the dead holder's note is left behind"
    with held("train", "training", tmp_path):
        assert f'"pid": {os.getpid()}' in (tmp_path / "train.json").read_text()


# Each command with its required flags: a real split (the params are checked against it before the
# lock), outputs that need not exist (the lock comes before any of them is read or written).
STAGE_COMMANDS = {
    "training": "stages.train --split split --model m --run-file r --history h --metrics x",
    "evaluation": "stages.evaluate --model m --curves c --split split --run-file r --per-image p --metrics x "
    "--headline h",
    "denoiser fit": "stages.train_denoiser --curves c --light l --split split --model m --run-file r "
    "--metrics x",
    "light fit": "stages.train_light --split split --model m --metrics x --grid g",
    "tuning of study 'lol-zero-dce'": "src.tune --study-name lol-zero-dce --n-trials 1",
}
LOCK_NAMES = {
    "training": "train",
    "evaluation": "evaluate",
    "denoiser fit": "train_denoiser",
    "light fit": "train_light",
    "tuning of study 'lol-zero-dce'": "tune-lol-zero-dce",
}


@pytest.mark.parametrize("what", list(STAGE_COMMANDS))
def test_a_stage_run_by_hand_beside_a_running_one_stops_at_once(tmp_path, what):
    """The command as DVC or a user runs it, in the project, while another process holds its lock."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params_dict()))
    tiny_split(tmp_path, tiny_params())
    with held(LOCK_NAMES[what], what, tmp_path / ".locks"):
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", *STAGE_COMMANDS[what].split()],
            cwd=tmp_path,
            env=command_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
    assert second.returncode == 1, second.stderr
    (line,) = second.stderr.splitlines()
    assert re.fullmatch("error: " + REFUSAL.format(what=re.escape(what), pid=os.getpid()), line)
    assert seconds < 10, f"refused after {seconds:.1f} s: the lock comes before TensorFlow loads"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "params.yaml", "split"], "nothing started"
