"""vudev: virtual block and character devices inside umvu (issue: vudev)."""
import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib

import pexpect
import pytest

from conftest import BASE_ENV, REPO, run

PY_IOCTLS = r'''
import errno, fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
def q(req, fmt):
    try:
        return struct.unpack(fmt, fcntl.ioctl(fd, req, bytes(struct.calcsize(fmt))))
    except OSError as e:
        return errno.errorcode[e.errno]
print("BLKGETSIZE64", q(0x80081272, "<Q"))
print("BLKGETSIZE", q(0x1260, "<Q"))
print("BLKSSZGET", q(0x1268, "<i"))
print("BLKPBSZGET", q(0x127b, "<I"))
print("BLKROGET", q(0x125e, "<i"))
print("BLKIOMIN", q(0x1278, "<I"))
print("BLKALIGNOFF", q(0x127a, "<i"))
print("BLKDISCARDZEROES", q(0x127c, "<I"))
print("unknown", q(0x12345678 & 0x4fffffff, "<Q"))
print("TCGETS", q(0x5401, "60s"))
print("SEEK_END", os.lseek(fd, 0, os.SEEK_END))
print("read at end", len(os.pread(fd, 4096, os.lseek(fd, 0, os.SEEK_END))))
'''


def sha256_range(path, offset, length):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        h.update(f.read(length))
    return h.hexdigest()


def in_umvu(script, mode="umvu", **kw):
    return run(mode, ["bash", "-c", "vu_insmod vudev vufuse || exit 99\n" + script], **kw)


def host_partitions(image):
    """{number: (start, sectors)} from the host's sfdisk."""
    out = subprocess.run(["sfdisk", "-d", str(image)], capture_output=True,
                         text=True).stdout
    parts = {}
    for m in re.finditer(r"(\d+) : start=\s*(\d+), size=\s*(\d+)", out):
        parts[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return parts


SCENARIO = """
vu_insmod vudev vufuse
vumount -t vudevpartx disk.img /dev/hda
sgdisk -n 1:2048:+100M -n 2:0:+50M /dev/hda > /dev/null
mkfs.ext4 -q /dev/hda1
mkdir -p mnt
vumount -t vufuseext2 -o rw+ /dev/hda1 mnt
echo ciao > mnt/hello
vuumount mnt; vuumount /dev/hda
echo finished
"""


def check_scenario_image(image, tmp_path):
    out = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True).stdout
    assert re.search(r"^\s+1\s+2048\s+206847\s+100.0 MiB\s+8300", out, re.M), out
    assert re.search(r"^\s+2\s+206848\s+309247\s+50.0 MiB\s+8300", out, re.M), out
    part = tmp_path / "part1.img"
    with open(image, "rb") as f, open(part, "wb") as g:
        f.seek(2048 * 512)
        g.write(f.read(100 << 20))
    fsck = subprocess.run(["e2fsck", "-fn", str(part)], capture_output=True)
    assert fsck.returncode == 0, fsck.stdout
    cat = subprocess.run(["debugfs", "-R", "cat /hello", str(part)], capture_output=True)
    assert cat.stdout == b"ciao\n"


def test_scenario_as_unprivileged_user(as_user, tmp_path):
    image = as_user.work / "disk.img"
    if image.exists():
        image.unlink()
    r = as_user(["bash", "-c", "truncate -s 1G disk.img && set -e\n" + SCENARIO])
    assert r.returncode == 0 and r.stdout == b"finished\n", r.stderr.decode()
    check_scenario_image(image, tmp_path)


def test_scenario_as_root_in_both_modes(tmp_path, guest_mode):
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(1 << 30)
    r = run(guest_mode, ["bash", "-c", "set -e\n" + SCENARIO], cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == b"finished\n", r.stderr.decode()
    check_scenario_image(image, tmp_path)


def test_interactive_gdisk_as_unprivileged_user(as_user):
    image = as_user.work / "gdisk.img"
    if image.exists():
        image.unlink()
    with open(image, "wb") as f:
        f.truncate(256 << 20)
    os.chown(image, 65534, 65534)
    env = dict(BASE_ENV, PS1="$ ", TERM="dumb")
    prefix = as_user.prefix
    child = pexpect.spawn(prefix[0], prefix[1:] + ["bash", "--norc", "-i"],
                          cwd=str(as_user.work), env=env, timeout=60, encoding="utf-8")
    child.expect_exact("$ ")
    child.sendline("id -u")
    child.expect_exact("65534" if os.getuid() == 0 else str(os.getuid()))
    child.expect_exact("$ ")
    child.sendline("vu_insmod vudev && vumount -t vudevpartx gdisk.img /dev/hda && echo ok")
    child.expect_exact("ok")
    child.sendline("gdisk /dev/hda")
    child.expect_exact("Command (? for help): ")
    child.sendline("n")
    child.expect(r"Partition number \(1-128, default 1\): ")
    child.sendline("")
    child.expect("First sector.*: ")
    child.sendline("")
    child.expect("Last sector.*: ")
    child.sendline("+64M")
    child.expect(r"Hex code or GUID.*: ")
    child.sendline("8300")
    child.expect_exact("Command (? for help): ")
    child.sendline("n")
    child.expect(r"Partition number \(2-128, default 2\): ")
    child.sendline("")
    child.expect("First sector.*: ")
    child.sendline("")
    child.expect("Last sector.*: ")
    child.sendline("+32M")
    child.expect(r"Hex code or GUID.*: ")
    child.sendline("ef00")
    child.expect_exact("Command (? for help): ")
    child.sendline("w")
    child.expect(r"Do you want to proceed\? \(Y/N\): ")
    child.sendline("Y")
    child.expect("The operation has completed successfully")
    child.expect_exact("$ ")
    child.sendline("stat -c '%n %t:%T' /dev/hda1 /dev/hda2; exit 3")
    child.expect(pexpect.EOF)
    child.close()
    assert "/dev/hda1 3:1" in child.before and "/dev/hda2 3:2" in child.before
    assert child.exitstatus == 3
    out = subprocess.run(["sgdisk", "-p", str(image)], capture_output=True, text=True).stdout
    assert re.search(r"^\s+1\s+2048\s+133119\s+64.0 MiB\s+8300", out, re.M), out
    assert re.search(r"^\s+2\s+133120\s+198655\s+32.0 MiB\s+EF00", out, re.M), out


FDISK_INPUT = ("o\nn\np\n1\n\n+20M\nn\np\n2\n\n+20M\nn\np\n3\n\n+20M\nn\ne\n\n\n"
               "n\n\n+10M\nn\n\n+10M\nt\n5\nc\nw\n")


@pytest.fixture
def loop_of(tmp_path):
    """Attach (part of) an image to a loop device on the host (root); detached after."""
    devices = []

    def attach(image, offset=0, size=None):
        argv = ["losetup", "-f", "--show", "-r", "-o", str(offset)]
        if size:
            argv += ["--sizelimit", str(size)]
        dev = subprocess.run(argv + [str(image)], capture_output=True, text=True,
                             check=True).stdout.strip()
        devices.append(dev)
        return dev
    yield attach
    for dev in devices:
        subprocess.run(["losetup", "-d", dev])


@pytest.mark.skipif(os.getuid() != 0, reason="compares with the host's loop devices (root)")
def test_fdisk_mbr_logical_vfat_blkid_as_on_a_loop_device(tmp_path, loop_of):
    image = tmp_path / "m.img"
    with open(image, "wb") as f:
        f.truncate(128 << 20)
    (tmp_path / "fdisk.in").write_text(FDISK_INPUT)
    (tmp_path / "ioctls.py").write_text(PY_IOCTLS)
    script = """
        vumount -t vudevpartx m.img /dev/hda && fdisk /dev/hda < fdisk.in > /dev/null &&
        mkfs.vfat /dev/hda5 > /dev/null && mkfs.ext4 -q /dev/hda1 && mkfs.ext4 -q -O ^has_journal /dev/hda6 &&
        for p in /dev/hda /dev/hda1 /dev/hda2 /dev/hda4 /dev/hda5 /dev/hda6; do
            echo "== $p"; blkid -p $p; echo "rc=$?"; python3 ioctls.py $p
        done && echo "== fdisk" && fdisk -l /dev/hda && echo "== sfdisk" && sfdisk -d /dev/hda
    """
    r = in_umvu(script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    inside = r.stdout.decode()
    # the same image, seen by the host through loop devices (one per partition)
    parts = host_partitions(image)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6]
    disk = loop_of(image)
    names = {"/dev/hda": disk}
    host = []
    for p in ("/dev/hda", "/dev/hda1", "/dev/hda2", "/dev/hda4", "/dev/hda5", "/dev/hda6"):
        if p == "/dev/hda":
            dev = disk
        else:
            start, sectors = parts[int(p[8:])]
            if int(p[8:]) == 4:
                sectors = 2  # Linux gives an extended partition 1 KiB
            dev = loop_of(image, start * 512, sectors * 512)
        names[p] = dev
        probe = subprocess.run(["blkid", "-p", dev], capture_output=True, text=True)
        ioc = subprocess.run([sys.executable, str(tmp_path / "ioctls.py"), dev],
                             capture_output=True, text=True)
        host.append("== %s\n%src=%d\n%s" % (p, probe.stdout.replace(dev, p),
                                            probe.returncode, ioc.stdout))
    fd = subprocess.run(["fdisk", "-l", disk], capture_output=True, text=True).stdout
    sf = subprocess.run(["sfdisk", "-d", disk], capture_output=True, text=True).stdout
    for p in sorted(parts, reverse=True):
        fd = fd.replace("%sp%d" % (disk, p), "/dev/hda%d" % p)
        sf = sf.replace("%sp%d" % (disk, p), "/dev/hda%d" % p)
    host_text = "".join(host) + "== fdisk\n" + fd.replace(disk, "/dev/hda") + \
        "== sfdisk\n" + sf.replace(disk, "/dev/hda")
    # loop devices are read-only here (-r) and report it
    host_text = host_text.replace("BLKROGET (1,)", "BLKROGET (0,)")
    # unknown ioctls: the loop driver says EINVAL where block devices say ENOTTY
    assert inside.count("unknown ENOTTY") == 6 and inside.count("TCGETS ENOTTY") == 6

    def lines(text):
        # (fdisk's columns are as wide as the device names)
        return [" ".join(ln.split()) for ln in text.splitlines()
                if not ln.startswith(("Disk model", "unknown", "TCGETS"))]
    assert lines(inside) == lines(host_text)


def test_writes_never_cross_a_partition_boundary(tmp_path):
    image = tmp_path / "d.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    r = in_umvu("vumount -t vudevpartx d.img /dev/hda && "
                "sgdisk -n 1:2048:+8M -n 2:0:+8M /dev/hda > /dev/null && "
                "head -c 8M /dev/urandom > /dev/hda2 && echo ready", cwd=tmp_path)
    assert r.stdout == b"ready\n", r.stderr.decode()
    p2 = host_partitions(image)[2]
    before = sha256_range(image, p2[0] * 512, p2[1] * 512)
    script = r'''
        vumount -t vudevpartx d.img /dev/hda
        dd if=/dev/zero of=/dev/hda1 bs=1M count=20 status=none; echo "dd rc=$?"
        python3 - <<'EOF'
import errno, os
fd = os.open("/dev/hda1", os.O_RDWR)
end = os.lseek(fd, 0, os.SEEK_END)
print("end", end)
print("partial", os.pwrite(fd, b"x" * 4096, end - 1000))
for off in (end, end + 4096, 1 << 40):
    try:
        os.pwrite(fd, b"y" * 512, off)
        print("wrote past the end")
    except OSError as e:
        print("past end", errno.errorcode[e.errno])
print("read past end", len(os.pread(fd, 4096, end)), len(os.pread(fd, 4096, end - 100)))
EOF
    '''
    r = in_umvu(script, cwd=tmp_path)
    assert r.stdout.decode().splitlines() == [
        "dd rc=1", "end 8388608", "partial 1000", "past end ENOSPC", "past end ENOSPC",
        "past end ENOSPC", "read past end 0 100"], r.stderr.decode()
    assert b"No space left on device" in r.stderr
    assert sha256_range(image, p2[0] * 512, p2[1] * 512) == before


def _mbr(entries, extra=()):
    sector = bytearray(512)
    for i, (ptype, start, count) in enumerate(entries):
        struct.pack_into("<B3sB3sII", sector, 446 + 16 * i, 0, b"\0\0\0", ptype, b"\0\0\0",
                         start, count)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def _blank(image, size):
    with open(image, "wb") as f:
        f.truncate(size)


def _write(image, offset, data):
    with open(image, "r+b") as f:
        f.seek(offset)
        f.write(data)


def test_malformed_partition_tables(tmp_path):
    cases = {}
    size = 32 << 20
    # a partition past the end, one crossing it, and a good one
    img = tmp_path / "past.img"
    _blank(img, size)
    _write(img, 0, _mbr([(0x83, 2048, 2048), (0x83, 10 ** 6, 100), (0x83, 60000, 10 ** 6)]))
    cases[img] = ["/dev/hda1 1048576", "/dev/hda3 %d" % (size - 60000 * 512)]
    # logical partitions whose chain loops back on itself
    img = tmp_path / "loop.img"
    _blank(img, size)
    _write(img, 0, _mbr([(0x05, 2048, 40000)]))
    _write(img, 2048 * 512, _mbr([(0x83, 63, 1000), (0x05, 0, 40000)]))  # next: itself
    cases[img] = ["/dev/hda1 1024", "/dev/hda5 512000"]
    # a protective MBR over a GPT whose both copies fail their CRC
    img = tmp_path / "gpt.img"
    _blank(img, size)
    _write(img, 0, _mbr([(0xEE, 1, size // 512 - 1)]))
    hdr = bytearray(512)
    hdr[:8] = b"EFI PART"
    struct.pack_into("<I", hdr, 12, 92)
    struct.pack_into("<I", hdr, 16, zlib.crc32(b"wrong"))
    _write(img, 512, bytes(hdr))
    cases[img] = []
    # random bytes with a valid signature
    img = tmp_path / "noise.img"
    _blank(img, size)
    noise = bytearray(os.urandom(512))
    noise[510:512] = b"\x55\xaa"
    for i in range(4):  # no extended types, so that the noise cannot chain
        noise[446 + 16 * i + 4] = 0x83
    _write(img, 0, bytes(noise))
    cases[img] = None  # whatever it holds: no crash, each partition inside the disk
    for img, expect in cases.items():
        script = ("vumount -t vudevpartx %s /dev/hda || exit 7\n"
                  "for i in 1 2 3 4 5 6 7 8; do [ -b /dev/hda$i ] && "
                  "echo /dev/hda$i $(blockdev --getsize64 /dev/hda$i); done; echo alive"
                  % img)
        r = in_umvu(script)
        lines = r.stdout.decode().splitlines()
        assert r.returncode == 0 and lines[-1] == "alive", (img, r.stderr)
        if expect is not None:
            assert lines[:-1] == expect, (img, lines, r.stderr)
        for line in lines[:-1]:
            assert 0 < int(line.split()[1]) <= size
    r = in_umvu("vumount -t vudevpartx %s/missing.img /dev/hda; echo rc=$?" % tmp_path)
    assert r.stdout == b"rc=1\n" and b"No such file" in r.stderr
    r = in_umvu("vumount -t vudevpartx -o bogus %s /dev/hda; echo rc=$?" % img)
    assert r.stdout == b"rc=1\n" and b"bogus" in r.stderr
    r = in_umvu("vumount -t vudevnosuch none /dev/hda; echo rc=$?")
    assert r.stdout == b"rc=1\n" and b"vudevnosuch" in r.stderr


def test_ramdisk_formatted_mounted_and_gone(tmp_path):
    def snapshot():
        found = set()
        for top in ("/tmp", "/var/tmp", "/dev/shm"):
            for name in os.listdir(top):
                found.add(os.path.join(top, name))
        return found
    before = snapshot()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = f"""
        vumount -t vudevramdisk -o size=64M none /dev/ram0 &&
        blockdev --getsize64 /dev/ram0 && mkfs.ext4 -q /dev/ram0 &&
        vumount -t vufuseext2 -o rw+ /dev/ram0 {mnt} &&
        cp -a /usr/share/doc/bash {mnt}/doc && diff -r /usr/share/doc/bash {mnt}/doc &&
        df --output=size {mnt} | tail -1 && vuumount {mnt} && e2fsck -fn /dev/ram0 > /dev/null &&
        echo clean &&
        vumount -t vudevramdisk -o size=16M,mbr none /dev/ram1 &&
        sgdisk -n 1:2048:0 /dev/ram1 > /dev/null && blockdev --getsize64 /dev/ram1p1
    """
    r = in_umvu(script)
    out = r.stdout.decode().split()
    assert out[0] == str(64 << 20) and out[-2] == "clean", (out, r.stderr.decode())
    assert int(out[-1]) == (16 << 20) - 2048 * 512 - 33 * 512 - (16 << 20) % 4096 or \
        int(out[-1]) > 15 << 20
    assert snapshot() == before
    assert os.listdir(mnt) == []


def test_null_and_zero_devices_as_the_real_ones(tmp_path):
    script = ("echo discarded > {null}; cat {null} | wc -c; head -c 5000 {zero} | od -An -tx1 "
              "| sort -u; dd if={zero} of={null} bs=1M count=3 status=none; echo rc=$?; "
              "stat -c '%F %t:%T' {null} {zero}")
    native = run("native", ["bash", "-c", script.format(null="/dev/null", zero="/dev/zero")])
    r = in_umvu("vumount -t vudevnull none /dev/mynull && "
                "vumount -t vudevzero none /tmp/myzero && "
                + script.format(null="/dev/mynull", zero="/tmp/myzero"))
    assert r.stdout == native.stdout, r.stderr.decode()
    assert not os.path.exists("/dev/mynull") and not os.path.exists("/tmp/myzero")


def test_device_node_in_a_virtual_fs_opens_the_device(tmp_path):
    image = tmp_path / "d.img"
    with open(image, "wb") as f:
        f.truncate(16 << 20)
        f.seek(5000)
        f.write(b"bytes on the disk")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = in_umvu(f"vumount -t vudevpartx {image} /dev/hdb && "
                f"vumount -t vufusememfs none {mnt} && mknod {mnt}/node b 3 64 && "
                f"dd if={mnt}/node bs=1 skip=5000 count=17 status=none")
    assert r.stdout == b"bytes on the disk", r.stderr.decode()


def test_busy_device_and_partition_refuse_umount(tmp_path):
    image = tmp_path / "d.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    script = """
        vumount -t vudevpartx d.img /dev/hda && sgdisk -n 1:2048:0 /dev/hda > /dev/null &&
        exec 3</dev/hda1 && { vuumount /dev/hda; echo "busy rc=$?"; } &&
        { blockdev --rereadpt /dev/hda; echo "reread rc=$?"; } &&
        exec 3<&- && blockdev --rereadpt /dev/hda && echo reread && vuumount /dev/hda &&
        echo gone && [ ! -e /dev/hda1 ] && echo no-partition
    """
    r = in_umvu(script, cwd=tmp_path)
    assert r.stdout.decode().splitlines() == ["busy rc=1", "reread rc=1", "reread", "gone",
                                              "no-partition"], r.stderr.decode()


def test_example_script_runs(tmp_path):
    r = subprocess.run(["bash", str(REPO / "examples" / "vudev.sh")], cwd=tmp_path,
                       capture_output=True, env=dict(os.environ, PATH="%s:%s" % (
                           REPO / "bin", os.environ["PATH"])), timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    assert b"partition 1: e2fsck clean" in r.stdout
    assert b"partition 1: /hello says ciao" in r.stdout


def test_partx_blkpg_and_open_flags(tmp_path):
    image = tmp_path / "d.img"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    script = """
        vumount -t vudevpartx d.img /dev/hda && sgdisk -n 1:2048:+8M -n 2:0:+8M /dev/hda >/dev/null &&
        partx -d --nr 2 /dev/hda && { [ -e /dev/hda2 ] || echo deleted; } &&
        partx -a --nr 2 /dev/hda && blockdev --getsize64 /dev/hda2 &&
        dd if=/dev/zero of=/dev/hda1 bs=4096 count=10 oflag=direct,sync status=none &&
        dd if=/dev/hda1 of=/dev/null bs=4096 count=10 iflag=direct status=none && echo direct &&
        python3 -c 'import os; fd = os.open("/dev/hda1", os.O_RDWR | os.O_EXCL | os.O_SYNC); print(os.pwrite(fd, b"x" * 512, 0))'
    """
    r = in_umvu(script, cwd=tmp_path)
    assert r.stdout.decode().splitlines() == ["deleted", str(8 << 20), "direct", "512"], \
        r.stderr.decode()
