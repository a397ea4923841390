"""Paths the build gives the Python tests (tests/CMakeLists.txt sets them)."""
import os
import pathlib

import pytest


@pytest.fixture(scope="session")
def build():
    return pathlib.Path(os.environ["EBPFVM_BUILD"])


@pytest.fixture(scope="session")
def ubpf_run(build):
    return str(build / "ubpf-run")


@pytest.fixture(scope="session")
def programs(build):
    return build / "tests" / "programs"
