"""cffi out-of-line build of umvu.core._tracer over libumvutracer.so (the tracer core,
TRACER_SOURCES in csrc, built by scripts/setup.sh): the umvu program links the same
library, so when it starts Python (umvu.cli.handed_over) the module sees the state the C
loop kept."""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(HERE, "..", "..", "csrc")
# the tracer core's files (as in scripts/setup.sh; tracer_internal.h says what each holds)
TRACER_SOURCES = ["tracer_state.c", "spawn.c", "tree.c", "stops.c", "control.c",
                  "seccomp_helper.c", "pathwalk.c", "hostwrites.c", "answers.c",
                  "memory.c"]

ffibuilder = FFI()
with open(os.path.join(CSRC, "seccomp_helper.h")) as f:
    ffibuilder.cdef(f.read())
if os.environ.get("UMVU_INPLACE") == "1":  # scripts/setup.sh: the library it built
    link = dict(libraries=["umvutracer"], library_dirs=[HERE],
                extra_link_args=["-Wl,-rpath,$ORIGIN"])
else:  # `pip install .`: no umvu program, the module holds the core itself
    link = dict(sources=[os.path.relpath(os.path.join(CSRC, f)) for f in TRACER_SOURCES])
ffibuilder.set_source(
    "umvu.core._tracer",
    '#include "seccomp_helper.h"',
    include_dirs=[os.path.relpath(CSRC)],
    extra_compile_args=["-O2", "-Wall"],
    **link,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=False)
