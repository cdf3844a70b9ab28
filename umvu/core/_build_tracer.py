"""cffi out-of-line build of csrc/seccomp_helper.c into umvu.core._tracer."""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "..", "csrc")

ffibuilder = FFI()
with open(os.path.join(CSRC, "seccomp_helper.h")) as f:
    ffibuilder.cdef(f.read())
ffibuilder.set_source(
    "umvu.core._tracer",
    '#include "seccomp_helper.h"',
    sources=[os.path.relpath(os.path.join(CSRC, "seccomp_helper.c"))],
    include_dirs=[os.path.relpath(CSRC)],
    extra_compile_args=["-O2", "-Wall"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
