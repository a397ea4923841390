"""setuptools drives the project's CMake to build the extension module ebpfvm._ebpfvm (see
pyproject.toml). The CMake build directory is build/pip (EBPFVM_PIP_BUILD_DIR to change it), kept
between installs so that a second install compiles only what changed."""
import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        src = pathlib.Path(__file__).resolve().parent
        build = pathlib.Path(os.environ.get("EBPFVM_PIP_BUILD_DIR", src / "build" / "pip"))
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.check_call(["cmake", "-S", str(src), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                               "-DEBPFVM_TESTS=OFF", "-DEBPFVM_BENCH=OFF", "-DEBPFVM_EXAMPLES=OFF", "-DEBPFVM_WERROR=OFF",
                               "-DEBPFVM_PYTHON=ON", f"-DPYTHON_EXECUTABLE={sys.executable}"])
        subprocess.check_call(["cmake", "--build", str(build), "--target", "_ebpfvm", "-j", str(os.cpu_count() or 1)])
        built = sorted((build / "python" / "ebpfvm").glob("_ebpfvm*.so"))
        if not built:
            raise RuntimeError(f"the CMake build made no _ebpfvm module in {build}/python/ebpfvm (is pybind11-dev installed?)")
        dest = pathlib.Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], dest)


setup(ext_modules=[Extension("ebpfvm._ebpfvm", sources=[])], cmdclass={"build_ext": CMakeBuild})
