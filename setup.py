"""umvu's package: the Python code, the cffi modules (the tracer core and libext2fs's),
the keeper program of vunetvdestack's stacks and the man pages.

``pip install .`` builds the tracer core into the cffi module itself (scripts/setup.sh,
for the source tree, builds it as libumvutracer.so, shared with the bin/umvu launcher);
the commands are console scripts; the man pages (umvu.manual) go to share/man/man1."""
import os
import subprocess
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from umvu.manual import PAGES, write_pages  # noqa: E402  (pure data, no cffi)

COMMANDS = [name for name in PAGES if name != "umvu"]
MAN_PAGES = [os.path.relpath(p, HERE) for p in write_pages(os.path.join(HERE, "build", "man"))]


class BuildPy(build_py):
    """The Python files, and the keeper program of vunetvdestack (csrc/vunet_stack.c,
    on libvdeplug: without it vunetvdestack says at mount that it is not built)."""

    def run(self):
        super().run()
        out = os.path.join(self.build_lib, "umvu", "submodules", "vunet_stack")
        cmd = [os.environ.get("CC", "gcc"), "-O2", "-Wall", "-o", out,
               os.path.join(HERE, "csrc", "vunet_stack.c"), "-lvdeplug"]
        if subprocess.run(cmd).returncode != 0:
            print("umvu: vunet_stack not built (libvdeplug-dev missing?): vunetvdestack "
                  "will not mount", file=sys.stderr)


setup(
    name="umvu",
    version="0.1.0",
    description="partial virtual machine hypervisor in user space (VUOS lineage)",
    packages=find_packages(include=["umvu", "umvu.*"]),
    install_requires=["cffi>=1.15", "greenlet>=2", "pyfuse3>=3.2", "trio>=0.22",
                      "python-ptrace>=0.9"],
    cffi_modules=["umvu/core/_build_tracer.py:ffibuilder",
                  "umvu/submodules/_build_ext2fs.py:ffibuilder"],
    cmdclass={"build_py": BuildPy},
    entry_points={"console_scripts": ["umvu=umvu.cli:main"]
                  + ["%s=umvu.commands:%s" % (c, c) for c in COMMANDS]},
    data_files=[("share/man/man1", MAN_PAGES)],
    python_requires=">=3.11",
    zip_safe=False,
)
