"""vufusearchive (libarchive), vufuseiso9660 (pycdlib) and vufusefatfs (pyfatfs): archives,
CD images and FAT file systems made by the host's tools, mounted inside umvu and
compared member by member with their source; FAT written inside and read back on the
host by mtools and fsck.vfat; corrupt inputs refused or EIO, the session going on."""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess

import pytest

from conftest import run

SOURCE_TIME = 1_600_000_000  # (whole even seconds: what every format keeps)


def make_tree(top):
    """Files of several sizes and modes, symlinks, a hard link, unicode names, deep
    directories, with fixed mtimes."""
    os.makedirs(top / "deep" / "er" / "still")
    os.makedirs(top / "ünï cødé")
    for i, size in enumerate((0, 1, 511, 512, 4096, 70001, 1 << 20)):
        (top / ("f%d.bin" % i)).write_bytes(os.urandom(size))
    (top / "deep" / "er" / "still" / "leaf.txt").write_text("leaf\n")
    (top / "ünï cødé" / "名前.txt").write_text("unicode\n")
    (top / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(top / "script.sh", 0o755)
    os.chmod(top / "f1.bin", 0o600)
    os.chmod(top / "deep" / "er", 0o750)
    os.symlink("f2.bin", top / "link")
    os.symlink("deep/er/still/leaf.txt", top / "deep-link")
    os.link(top / "f3.bin", top / "deep" / "hard")
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (SOURCE_TIME, SOURCE_TIME),
                     follow_symlinks=False)


def listing(top, owners=True, hardlinks=True):
    """path, mode, owner, size, sha256, link target, mtime (s), hard-link group."""
    out, groups = [], {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            row = [os.path.relpath(path, top), "%o" % st.st_mode]
            if owners:
                row.append("%d:%d" % (st.st_uid, st.st_gid))
            if stat.S_ISREG(st.st_mode):
                row += [str(st.st_size),
                        hashlib.sha256(open(path, "rb").read()).hexdigest()[:16],
                        "mtime=%d" % int(st.st_mtime)]
                if hardlinks and st.st_nlink > 1:
                    row.append("group=%s" % groups.setdefault(st.st_ino, row[0]))
            elif stat.S_ISLNK(st.st_mode):
                row += ["-> " + os.readlink(path), "mtime=%d" % int(st.st_mtime)]
            out.append("\t".join(row))
    return out


LISTER = ("import sys; sys.path.insert(0, %r); from test_vufuse_images import listing; "
          "print('\\n'.join(listing(sys.argv[1], %s, %s)))")


def listed_inside(mode, tmp_path, fstype, image, owners=True, hardlinks=True, opts=""):
    mnt = tmp_path / ("mnt-" + fstype)
    mnt.mkdir(exist_ok=True)
    code = LISTER % (os.path.dirname(__file__), owners, hardlinks)
    r = run(mode, ["bash", "-c", "vu_insmod vufuse && vumount -t %s %s %s %s && "
                   "python3 -c \"%s\" %s" % (fstype, opts, image, mnt, code, mnt)],
            cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    return r.stdout.decode().splitlines()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    top = tmp_path_factory.mktemp("tree") / "src"
    make_tree(top)
    return top


@pytest.mark.parametrize("kind", ["tar.gz", "tar.xz", "pax", "zip", "cpio"])
def test_archive_members_equal_the_source(tree, tmp_path, kind, guest_mode):
    """Every member: name, mode, size, sha256, symlink target, mtime, owner (where the
    format keeps it) and hard links (tar, pax, cpio)."""
    archive = tmp_path / ("t." + kind.replace("pax", "pax.tar"))
    if kind == "zip":
        subprocess.run(["zip", "-qry", str(archive), "."], cwd=tree, check=True)
    elif kind == "cpio":
        names = subprocess.run(["find", "."], cwd=tree, capture_output=True,
                               check=True).stdout
        with open(archive, "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=names,
                           stdout=f, check=True)
    else:
        flag = {"tar.gz": ["-z"], "tar.xz": ["-J"], "pax": ["--format=pax"]}[kind]
        subprocess.run(["tar", "-c"] + flag + ["-f", str(archive), "-C", str(tree), "."],
                       check=True)
    hardlinks = kind != "zip"
    inside = listed_inside(guest_mode, tmp_path, "vufusearchive", archive,
                           hardlinks=hardlinks)
    assert inside == listing(tree, hardlinks=hardlinks)


def test_iso_with_rock_ridge_equals_the_source(tree, tmp_path, guest_mode):
    iso = tmp_path / "t.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-J", "--hardlinks", "-o",
                    str(iso), str(tree)], check=True, capture_output=True)
    inside = listed_inside(guest_mode, tmp_path, "vufuseiso9660", iso)
    assert inside == listing(tree)
    # the same image through libarchive, which reads ISO 9660 too
    assert listed_inside(guest_mode, tmp_path, "vufusearchive", iso) == listing(tree)


def test_iso_without_rock_ridge_shows_joliet_names(tree, tmp_path):
    iso = tmp_path / "j.iso"  # (genisoimage: xorriso writes Rock Ridge always)
    subprocess.run(["genisoimage", "-quiet", "-J", "-o", str(iso), str(tree)],
                   check=True, capture_output=True)
    inside = listed_inside("umvu", tmp_path, "vufuseiso9660", iso, owners=False,
                           hardlinks=False)
    names = sorted(line.split("\t")[0] for line in inside)
    assert "ünï cødé/名前.txt" in names and "deep/er/still/leaf.txt" in names
    assert all(line.split("\t")[1] in ("40555", "100444") for line in inside), inside


def test_fat_on_a_partition_read_back_by_mtools(tmp_path):
    """mkfs.vfat on a vudev partition, mounted rw+: long names, a 100 MB file, renames,
    a directory moved; on the host mtools reads the same bytes and fsck.vfat is clean."""
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "300M", str(disk)], check=True)
    script = """set -e
        vu_insmod vudev vufuse
        vumount -t vudevpartx disk.img /dev/hda
        /usr/sbin/sgdisk -n 1:2048:+250M /dev/hda > /dev/null
        /usr/sbin/mkfs.vfat -F 32 -n UMVU /dev/hda1 > /dev/null
        mkdir -p m
        vumount -t vufusefatfs -o rw+ /dev/hda1 m
        mkdir -p "m/A Long Directory Name/sub"
        echo "long names kept" > "m/A Long Directory Name/A File With A Long Name.txt"
        head -c 100M /dev/urandom > m/big.bin
        sha256sum < m/big.bin > big.sha
        echo x > m/tmp.txt; mv m/tmp.txt "m/A Long Directory Name/sub/Renamed.TXT"
        mkdir m/moveme; echo inside > m/moveme/f; mv m/moveme "m/A Long Directory Name/moved"
        cat "m/a long directory name/a file with a long name.txt"
        ln -s x m/l 2>/dev/null || echo no symlinks
        vuumount m
        """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert r.stdout == b"long names kept\nno symlinks\n"
    part = "%s@@1M" % disk  # (mtools: the partition at 1 MiB)
    mdir = subprocess.run(["mdir", "-/", "-b", "-i", part, "::/"], capture_output=True,
                          check=True).stdout.decode().splitlines()
    assert "::/A Long Directory Name/A File With A Long Name.txt" in mdir
    assert "::/A Long Directory Name/sub/Renamed.TXT" in mdir
    assert "::/A Long Directory Name/moved/f" in mdir
    got = subprocess.run(["mcopy", "-i", part, "::/big.bin", "-"], capture_output=True,
                         check=True).stdout
    assert hashlib.sha256(got).hexdigest() == (tmp_path / "big.sha").read_text().split()[0]
    assert len(got) == 100 << 20
    with open(disk, "rb") as f, open(tmp_path / "part.img", "wb") as out:
        f.seek(1 << 20)
        out.write(f.read(250 << 20))
    fsck = subprocess.run(["fsck.vfat", "-n", str(tmp_path / "part.img")],
                          capture_output=True)
    assert fsck.returncode == 0, fsck.stdout.decode()


def test_corrupt_inputs(tree, tmp_path):
    """A truncated archive, a CD image with its descriptors overwritten and a FAT whose
    tables are random bytes: a one-line mount error or EIO, never a crash; the session
    goes on."""
    good = tmp_path / "t.tar.gz"
    subprocess.run(["tar", "-czf", str(good), "-C", str(tree), "."], check=True)
    data = good.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[:len(data) // 2])
    iso = tmp_path / "bad.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", str(iso), str(tree)],
                   check=True, capture_output=True)
    raw = bytearray(iso.read_bytes())
    raw[16 * 2048:18 * 2048] = os.urandom(2 * 2048)
    iso.write_bytes(bytes(raw))
    fat = tmp_path / "fat.img"
    subprocess.run(["truncate", "-s", "40M", str(fat)], check=True)
    subprocess.run(["mkfs.vfat", "-F", "32", str(fat)], check=True, capture_output=True)
    subprocess.run(["mcopy", "-i", str(fat), str(tree / "f6.bin"), "::/f6.bin"], check=True)
    raw = bytearray(fat.read_bytes())
    raw[32 * 512:64 * 512] = os.urandom(32 * 512)  # (the first FAT of a FAT32)
    raw[64 * 512:2048 * 512] = os.urandom(1984 * 512)  # (and the second)
    fat.write_bytes(bytes(raw))
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    script = """
        vu_insmod vufuse
        vumount -t vufusearchive cut.tar.gz a; echo "archive $?"
        vumount -t vufuseiso9660 bad.iso b; echo "iso $?"
        if vumount -t vufusefatfs fat.img c; then
            cat c/f6.bin > /dev/null; echo "fat read $?"
        else
            echo "fat mount refused"
        fi
        echo alive
        """
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path, timeout=300)
    out = r.stdout.decode().splitlines()
    err = [line for line in r.stderr.decode().splitlines() if line.startswith("vumount: ")]
    assert out[:2] == ["archive 1", "iso 1"], (out, r.stderr)
    assert out[2] in ("fat read 1", "fat mount refused") and out[3] == "alive", out
    assert "cut.tar.gz" in err[0] and "bad.iso" in err[1], err
    assert b"Traceback" not in r.stderr or out[2] == "fat read 1"
