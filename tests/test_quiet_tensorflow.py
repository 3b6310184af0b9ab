"""TensorFlow's start-up banners are dropped; everything else written to stderr survives."""

import os
import subprocess
import sys

import pytest

from src import quiet_tensorflow

BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
CUDA_PROBE = (
    "E0000 00:00:1796133402.213824   31671 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
    "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300, check=True
    )


@pytest.mark.slow
def test_importing_tensorflow_through_the_package_prints_nothing_but_our_own_lines():
    result = run_python("import src, sys, tensorflow as tf; tf.constant(1); print('ours', file=sys.stderr)")
    assert result.stderr == "ours\n"


@pytest.mark.slow
def test_tensorflows_own_switch_brings_the_start_up_lines_back():
    result = run_python(
        "import src, tensorflow as tf; tf.config.list_physical_devices()", TF_CPP_MIN_LOG_LEVEL="0"
    )
    assert "cudart_stub" in result.stderr or "cuInit" in result.stderr or "InitializeLog" in result.stderr


def test_real_errors_written_while_tensorflow_loads_are_replayed_in_order(capfd):
    with quiet_tensorflow.filtered_stderr(has_driver=False):
        os.write(2, (BANNER + "E0000 real trouble: libfoo.so missing\n" + CUDA_PROBE + "after\n").encode())
    assert capfd.readouterr().err == "E0000 real trouble: libfoo.so missing\nafter\n"


def test_the_cuda_probe_is_an_error_worth_showing_where_a_driver_exists():
    assert quiet_tensorflow.is_banner(CUDA_PROBE, has_driver=False)
    assert not quiet_tensorflow.is_banner(CUDA_PROBE, has_driver=True)
    assert quiet_tensorflow.is_banner(BANNER, has_driver=True)
    assert not quiet_tensorflow.is_banner("Traceback (most recent call last):\n", has_driver=False)


def test_stderr_is_restored_even_when_the_import_fails(capfd):
    try:
        with quiet_tensorflow.filtered_stderr(has_driver=False):
            os.write(2, b"ImportError detail\n")
            raise ImportError("boom")
    except ImportError:
        pass
    os.write(2, b"later\n")
    assert capfd.readouterr().err == "ImportError detail\nlater\n"


@pytest.mark.slow
def test_a_commands_verbose_flag_brings_them_back_too():
    code = "import sys; sys.argv = ['zero-dce-enhance', '-v']; import src, tensorflow"
    result = run_python(code)
    assert "InitializeLog" in result.stderr or "cuda" in result.stderr
