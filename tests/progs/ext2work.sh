# A read-write workload on the file system mounted at $1 (run by bash, in a guest or
# natively); leaves a tree whose listing the tests compare.
set -e
M=$1
cd "$M"
echo ciao > hello
mkdir -p a/b/c d
cp -a /usr/share/doc/bash d/bashdoc
seq 1 20000 > a/b/c/numbers
printf 'append\n' >> a/b/c/numbers
truncate -s 5000 a/b/c/numbers
truncate -s 3M a/grown
python3 -c "import random, sys; sys.stdout.buffer.write(random.Random(1).randbytes(1310720))" > a/random
dd if=a/random of=a/sparse bs=4k seek=1000 count=3 conv=notrunc status=none
head -c 100000 a/random > a/rewrite
dd if=/dev/zero of=a/rewrite bs=1000 seek=10 count=5 conv=notrunc status=none
mv a/b/c a/moved
mv d/bashdoc d/renamed
mkdir many
(cd many && seq -f 'entry-%05g' 1 3000 | xargs touch)
rm many/entry-0*5
ln hello hello-link
ln -s hello sym
ln -s "/$(printf 'long%.0s' $(seq 40))/target" longsym
chmod 640 hello
chmod 1777 d
mkfifo a/fifo
python3 -c 'import os; os.setxattr("hello", "user.greeting", b"hi"); os.setxattr("a", "user.dir", b"x" * 700); os.setxattr("a/grown", "user.gone", b"1"); os.removexattr("a/grown", "user.gone")'
touch -d '2020-01-02 03:04:05.123456789' hello a/moved
exec 3<a/random
rm a/random
cat <&3 > a/random-was-open
exec 3<&-
rmdir a/moved 2>/dev/null || true
rm -rf d/renamed/../renamed
echo done
