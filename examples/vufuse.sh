#!/bin/bash
# vufuse scenarios: an in-memory file system and a passthrough of a host directory,
# mounted for this umvu session only; a C program and a Python package run from memory.
# usage: examples/vufuse.sh [PYFUSE3_EXAMPLE.py]   (e.g. pyfuse3's examples/hello.py)
set -e
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/mem" "$work/real" "$work/src" "$work/ex"
echo "from the host" > "$work/src/host.txt"
printf '#include <stdio.h>\nint main(void){puts("C program running from vufusememfs");return 0;}\n' > "$work/hello.c"
umvu bash -c "
set -e
vu_insmod vufuse
vumount -t vufusememfs none $work/mem
vumount -t vufusereal $work/src $work/real
cd $work/mem
gcc -o hello $work/hello.c && ./hello
mkdir -p pkg/greet && echo 'def hi(): return \"python package imported from vufusememfs\"' > pkg/greet/__init__.py
PYTHONPATH=$work/mem/pkg python3 -c 'import greet; print(greet.hi())'
cat $work/real/host.txt; echo 'written through vufusereal' > $work/real/new.txt
if [ -n '${1:-}' ]; then
    vumount -t vufuse -o fs=${1:-} none $work/ex && echo \"pyfuse3 example at $work/ex:\" && ls -l $work/ex
fi
grep vufuse /proc/mounts
cd /; vuumount $work/mem; vuumount $work/real
"
echo "on the host, the mount points are empty: $(ls -A "$work/mem" | wc -l) entries"
cat "$work/src/new.txt"
