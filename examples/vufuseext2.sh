#!/bin/bash
# The headline scenario: an ext4 image mounted inside umvu, with no root, no kernel
# FUSE and nothing changed on the host but the image file.
#   umvu bash; vu_insmod vufuse; vumount -t vufuseext2 -o ro image.ext4 /mnt
#   ls -l /mnt; cp -a /mnt/some/dir ~/copy; vuumount /mnt
# then the same image read-write (-o rw+), checked afterwards with e2fsck on the host.
set -e
cd "$(dirname "$0")/.."
export PATH="$PWD/bin:$PATH"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/some" "$work/mnt" "$work/home"
cp -a /usr/share/doc/bash "$work/src/some/dir"
echo "hello from an ext4 image" > "$work/src/README"
mke2fs -q -t ext4 -d "$work/src" "$work/image.ext4" 32M
echo "image: $(du -h --apparent-size "$work/image.ext4" | cut -f1), made with mke2fs -d"
umvu bash <<EOS
set -e
vu_insmod vufuse
vumount -t vufuseext2 -o ro $work/image.ext4 $work/mnt
ls -l $work/mnt
cat $work/mnt/README
cp -a $work/mnt/some/dir $work/home/copy
grep " $work/mnt " /proc/mounts         # (its type: ext4, as the kernel shows it)
vuctl mounts                        # (the module: vufuseext2)
vuumount $work/mnt
vumount -t vufuseext2 -o rw+ $work/image.ext4 $work/mnt
echo "written inside umvu" > $work/mnt/new.txt
mkdir $work/mnt/newdir && mv $work/mnt/README $work/mnt/newdir/
df -h $work/mnt | tail -1
vuumount $work/mnt
EOS
diff -r "$work/src/some/dir" "$work/home/copy" && echo "copied tree matches the source"
e2fsck -fn "$work/image.ext4" >/dev/null 2>&1 && echo "e2fsck: clean"
debugfs -R "cat /new.txt" "$work/image.ext4" 2>/dev/null
echo "on the host, the mount point is empty: $(ls -A "$work/mnt" | wc -l) entries"
