"""One image, one writer (issue: nothing written is lost, acceptance 2).

A second mount of bytes a read-write mount holds is refused with EBUSY and a message
naming the image, as the kernel refuses a busy block device: twice as a file, as a file
and as the partition of a vudevpartx disk, in two umvu sessions; a read-only mount too,
unless the user asks for read-only by name (-o ro, -r). Read-only mounts share an image. The first mount's writes all reach the image (debugfs reads them).
"""
import subprocess

from conftest import BASE_ENV, UMVU, run
from test_vufuseext2 import fsck_clean, mkfs

BUSY = "mounted already (in this or another umvu session): Device or resource busy"


def names(image):
    r = subprocess.run(["debugfs", "-R", "ls -p /", str(image)], capture_output=True,
                       text=True)
    return sorted(f.split("/")[5] for f in r.stdout.split("\n") if f.count("/") >= 6
                  and f.split("/")[5] not in (".", "..", "lost+found"))


def umvu_bash(script, **kw):
    return run("umvu", ["bash", "-c", "vu_insmod vufuse vudev || exit 99\n" + script], **kw)


WRITE20 = "for i in $(seq 20); do echo $i > {m}/f$i || exit 97; done\n"


def test_file_twice_in_one_session(tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = umvu_bash(
        "vumount -t vufuseext2 -o rw+ disk.img a || exit 98\n" + WRITE20.format(m="a")
        + "vumount -t vufuseext2 -o rw+ disk.img b; echo rw=$?\n"
        "vumount -t vufuseext2 -o ro disk.img b; echo ro=$?\n"
        "vumount -t vufuseext2 disk.img /tmp; echo default=$?\n"
        "ls b >/dev/null; echo ls=$?\n", cwd=tmp_path)
    # (-o ro mounted b: it reads the image as it is on the file, as debugfs -c would)
    assert r.stdout == b"rw=1\nro=0\ndefault=1\nls=0\n", r.stderr
    head = "vumount: vufuseext2 on %s/b: %s/disk.img is " % (tmp_path, tmp_path)
    read_busy = ("mounted read-write already (in this or another umvu session): Device "
                 "or resource busy")
    assert r.stderr.decode().splitlines() == [
        head + BUSY, head.replace("%s/b:" % tmp_path, "/tmp:") + read_busy]
    assert names(image) == sorted("f%d" % i for i in range(1, 21))
    assert fsck_clean(image)[0] == 0


def test_read_only_mounts_share_an_image(tmp_path):
    image = tmp_path / "disk.img"
    src = tmp_path / "src"
    src.mkdir()
    (src / "hello").write_text("ciao\n")
    mkfs(image, size="16M", src=src)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    r = umvu_bash("vumount -t vufuseext2 -o ro disk.img a && "
                  "vumount -t vufuseext2 -o ro disk.img b && cat a/hello b/hello\n"
                  "vumount -t vufuseext2 -o rw+ disk.img /tmp; echo rw=$?", cwd=tmp_path)
    assert r.stdout == b"ciao\nciao\nrw=0\n", r.stderr  # (those ro were asked by name)


def test_partition_of_a_disk_and_the_same_bytes_as_a_file(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    r = umvu_bash(
        "set -e\nvumount -t vudevpartx disk.img /dev/hda\n"
        "sgdisk -n 1:2048:+20M -n 2:0:+20M /dev/hda > /dev/null\n"
        "mkfs.ext4 -q /dev/hda1; mkfs.ext4 -q /dev/hda2\n"
        "vumount -t vufuseext2 -o rw+ /dev/hda1 a\n" + WRITE20.format(m="a") +
        "set +e\n"
        "vumount -t vufuseext2 -o rw+,offset=%d disk.img b; echo same=$?\n"
        "vumount -t vufuseext2 -o rw+ /dev/hda2 c; echo other=$?\n"
        "echo x > c/x; vuumount c; vuumount a; vuumount /dev/hda\n" % (2048 * 512),
        cwd=tmp_path)
    assert r.stdout == b"same=1\nother=0\n", r.stderr
    assert BUSY in r.stderr.decode() and "disk.img" in r.stderr.decode()
    part = tmp_path / "part1.img"
    with open(image, "rb") as f, open(part, "wb") as g:
        f.seek(2048 * 512)
        g.write(f.read(20 << 20))
    assert names(part) == sorted("f%d" % i for i in range(1, 21))
    assert fsck_clean(part)[0] == 0


def test_two_sessions(tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    fifo = tmp_path / "go"
    subprocess.run(["mkfifo", str(fifo)], check=True)
    first = subprocess.Popen(
        UMVU + ["bash", "-c", "vu_insmod vufuse && vumount -t vufuseext2 -o rw+ disk.img a"
                " && echo mounted && read x < go && " + WRITE20.format(m="a")],
        cwd=tmp_path, env=dict(BASE_ENV), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.stdout.readline() == b"mounted\n"
    second = umvu_bash("vumount -t vufuseext2 -o rw+ disk.img b; echo rw=$?\n"
                       "vumount -t vufuseext2 disk.img b; echo default=$?\n"
                       "vumount -t vufuseext2 -o ro disk.img b; echo ro=$?\n", cwd=tmp_path)
    with open(fifo, "w") as f:
        f.write("go\n")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert second.stdout == b"rw=1\ndefault=1\nro=0\n", second.stderr
    assert BUSY in second.stderr.decode()
    assert names(image) == sorted("f%d" % i for i in range(1, 21))
    assert fsck_clean(image)[0] == 0
