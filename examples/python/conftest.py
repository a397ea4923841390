"""Where the examples' BPF objects are: $EBPFVM_OBJECTS, else build/release/examples (the
README's build). The ebpfvm package itself comes from PYTHONPATH=build/release/python or an
installed copy (pip install --no-build-isolation .)."""
import os
import pathlib

import pytest

import ebpfvm


@pytest.fixture(scope="session")
def objects():
    here = pathlib.Path(__file__).resolve().parents[2]
    return pathlib.Path(os.environ.get("EBPFVM_OBJECTS", here / "build" / "release" / "examples"))


@pytest.fixture
def open_object(objects):
    """open_object("firewall.o", cfg_udp_port=53): opened, globals set, loaded."""
    def open_(name, **globals_):
        obj = ebpfvm.Object.open(objects / name)
        for k, v in globals_.items():
            obj.set_global(k, v)
        return obj.load()
    return open_
