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
echo "== a network stack per process tree: vunetnull has no network; outside vustack, the host's"
umvu bash -c 'vu_insmod vunet && vumount -t vunetnull none /tmp/nonet.$$ &&
  vustack /tmp/nonet.$$ python3 -c "import socket; socket.create_connection((\"127.0.0.1\", 9))" 2>&1 | tail -1
  python3 -c "import socket; print(\"outside vustack:\", socket.socket().family.name)"'
echo "== a qcow2 VM disk made by qemu-img, partitioned, formatted and written inside umvu"
work=$(mktemp -d)
qemu-img create -q -f qcow2 "$work/vm.qcow2" 256M
umvu bash -c "vu_insmod vudev vufuse && vumount -t vudevqcow2 $work/vm.qcow2 /dev/hda &&
  /usr/sbin/sgdisk -n 1:2048:0 /dev/hda >/dev/null && /usr/sbin/mkfs.ext4 -q /dev/hda1 &&
  mkdir $work/mnt && vumount -t vufuseext2 -o rw+ /dev/hda1 $work/mnt &&
  cp -a /usr/share/doc/bash $work/mnt/ && df -h $work/mnt | tail -1 && vuumount $work/mnt"
qemu-img check "$work/vm.qcow2" | head -1
rm -rf "$work"
