#!/bin/bash
# The vudev scenario: partition a disk image, format a partition and mount it, all inside
# umvu, as whoever runs this (no root, no loop devices, nothing changed on the host but
# the image file); then the host's own tools check the image.
set -e
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir mnt
truncate -s 1G disk.img
umvu bash <<EOS
set -e
vu_insmod vudev vufuse
vumount -t vudevpartx disk.img /dev/hda
sgdisk -n 1:2048:+200M -n 2:0:+100M /dev/hda > /dev/null
ls -l /dev/hda /dev/hda1 /dev/hda2
mkfs.ext4 -q /dev/hda1
vumount -t vufuseext2 -o rw+ /dev/hda1 $work/mnt
echo ciao > $work/mnt/hello
df -h $work/mnt | tail -1
vuumount $work/mnt; vuumount /dev/hda
EOS
echo "--- on the host:"
sgdisk -p disk.img | tail -3
start=$(sgdisk -i 1 disk.img | awk '/First sector/ {print $3}')
sectors=$(sgdisk -i 1 disk.img | awk '/Partition size/ {print $3}')
dd if=disk.img of=part1.img bs=512 skip="$start" count="$sectors" status=none
e2fsck -fn part1.img > /dev/null 2>&1 && echo "partition 1: e2fsck clean"
echo "partition 1: /hello says $(debugfs -R 'cat /hello' part1.img 2>/dev/null)"
