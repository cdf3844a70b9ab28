#!/bin/sh
# Install what umvu needs (Debian bookworm), then build the C core in place.
# Idempotent and quick when everything is already there.
set -e
cd "$(dirname "$0")/.."
PKGS="gcc make python3 python3-dev python3-cffi python3-pytest python3-pexpect python3-pyfuse3 python3-trio fuse3 libfuse3-dev pkg-config
python3-hypothesis python3-greenlet strace proot e2fsprogs git tar coreutils findutils
libpython3.11-testsuite util-linux procps
libext2fs-dev fuse2fs gdisk fdisk dosfstools mtools
fuseext2 squashfuse squashfs-tools archivemount bindfs
vde2 libvdeplug-dev iproute2 iputils-ping curl python3-ptrace python3-venv man-db
python3-libarchive-c python3-pycdlib xorriso genisoimage zip unzip cpio python3-pip
qemu-user-static qemu-utils"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing packages:$missing (run this as root, or apt-get install them)" >&2
        exit 1
    fi
    echo "setup: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
PY=/usr/bin/python3
# an arm64 busybox for vubinfmt's tests (qemu-user-static runs it): Debian's .deb, kept
# in /var/cache/umvu
if ! ls /var/cache/umvu/busybox-static_*_arm64.deb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: fetching busybox-static:arm64"
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        apt-get update -qq || true
        mkdir -p /var/cache/umvu
        (cd /var/cache/umvu && apt-get download -qq busybox-static:arm64 2>/dev/null) || true
    fi
fi
# pyfatfs (vufusefatfs) is on PyPI only
if ! $PY -c 'import pyfatfs' 2>/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: missing Python package pyfatfs (run this as root, or pip install it)" >&2
        exit 1
    fi
    echo "setup: installing pyfatfs"
    $PY -m pip install -q --break-system-packages pyfatfs >/dev/null 2>&1 || \
        $PY -m pip install -q pyfatfs >/dev/null
fi
# the C parts, rebuilt only when their sources change: the tracer core as a shared
# library, the umvu program and the cffi modules (the tracer's links the library)
PY=/usr/bin/python3
newer() { [ ! -e "$1" ] || [ -n "$(find csrc umvu/core/_build_tracer.py umvu/submodules/_build_ext2fs.py -newer "$1" 2>/dev/null)" ]; }
# the tracer core's files (as in umvu/core/_build_tracer.py's TRACER_SOURCES)
TRACER_SOURCES="tracer_state.c spawn.c tree.c stops.c control.c seccomp_helper.c pathwalk.c
hostwrites.c answers.c memory.c"
if newer umvu/core/libumvutracer.so; then
    gcc -O2 -Wall -fPIC -shared -Wl,-soname,libumvutracer.so -Icsrc \
        -o umvu/core/libumvutracer.so $(printf "csrc/%s " $TRACER_SOURCES)
fi
if newer bin/umvu; then
    libpython=$($PY -c 'import sysconfig; print(sysconfig.get_config_var("INSTSONAME"))')
    gcc -O2 -Wall -Icsrc -DUMVU_PYTHON="\"$PY\"" -DUMVU_LIBPYTHON="\"$libpython\"" \
        -o bin/umvu csrc/umvu_main.c -Lumvu/core -lumvutracer \
        -Wl,-rpath,'$ORIGIN/../umvu/core' -ldl
fi
# the keeper of vunetvdestack's stacks (a program of its own: it makes namespaces)
if newer umvu/submodules/vunet_stack; then
    gcc -O2 -Wall -o umvu/submodules/vunet_stack csrc/vunet_stack.c -lvdeplug
fi
stale=""
for so_glob in "umvu/core/_tracer*.so" "umvu/submodules/_ext2fs*.so"; do
    so=$(ls $so_glob 2>/dev/null | head -1)
    if [ -z "$so" ] || newer "$so"; then
        stale=1
    fi
done
if [ -n "$stale" ]; then
    UMVU_INPLACE=1 $PY setup.py -q build_ext --inplace >/dev/null
fi
