#!/bin/sh
# The main job: show umvu running a real shell session under the hypervisor.
set -e
cd "$(dirname "$0")/.."
PATH="$PWD/bin:$PATH"
echo "== umvu runs a shell; everything it and its children do passes through umvu"
umvu bash -c 'echo "inside umvu: $(uname -sm), pid $$"; ls -ld /usr/share/doc | cut -c1-10; seq 3 | tac'
st=0; umvu sh -c 'kill -9 $$' || st=$?
echo "== exit statuses are the guest's: umvu sh -c 'kill -9 \$\$' exits $st"
echo "== umvu -S -d s: every syscall stops in the hypervisor, one line each (first 6)"
umvu -S -d s -o /tmp/umvu-demo.$$.log true
head -6 /tmp/umvu-demo.$$.log
rm -f /tmp/umvu-demo.$$.log
echo "== modules: a private in-memory file system, seen by this process tree only"
mnt=$(mktemp -d)
umvu bash -c "vu_insmod vufuse unreal && vumount -t vufusememfs none $mnt &&
  cp -a /usr/share/doc/bash $mnt/ && ls -l $mnt/bash | head -4 && grep $mnt /proc/mounts &&
  echo \"/unreal shows the host again: \$(cat /unreal/etc/hostname)\" && vuctl mounts"
echo "== after umvu, on the host, $mnt holds $(ls -A "$mnt" | wc -l) entries"
rmdir "$mnt"
echo "== an ext2 image (made with mke2fs -d) mounted inside umvu and listed by a shell"
work=$(mktemp -d)
mkdir "$work/src" "$work/mnt"
cp -a /usr/share/doc/bash "$work/src/doc"
echo "hello from ext2" > "$work/src/hello.txt"
mke2fs -q -t ext2 -d "$work/src" "$work/disk.ext2" 16M >/dev/null 2>&1
umvu bash -c "vu_insmod vufuse && vumount -t vufuseext2 -o ro $work/disk.ext2 $work/mnt &&
  ls -l $work/mnt && cat $work/mnt/hello.txt && df -h $work/mnt | tail -1"
rm -rf "$work"
