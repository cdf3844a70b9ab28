"""The example module of docs/modules.md (tests/modules/hellofs.py), mounted under umvu:
the guest sees what the document says it sees."""
import grp
import os
import pwd

from conftest import REPO, run

MODULE = REPO / "tests" / "modules" / "hellofs.py"


def guest(mode, mnt, script):
    return run(mode, ["bash", "-c", "vu_insmod %s && vumount -t hellofs none %s && %s"
                      % (MODULE, mnt, script)])


def test_the_file_its_listing_and_its_stat(guest_mode, tmp_path):
    mnt = tmp_path / "h"
    mnt.mkdir()
    r = guest(guest_mode, mnt, "cat {0}/hello; ls -A {0}; ls -l {0}; "
                               "stat -c '%s %F' {0}/hello {0}".format(mnt))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "hello, world"
    assert lines[1] == "hello"          # ls -A: the one entry
    assert lines[2] == "total 0"
    fields = lines[3].split()
    owner = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    assert fields[:5] == ["-r--r--r--", "1", owner, group, "13"]
    assert fields[-1] == "hello"
    assert lines[4:] == ["13 regular file", "0 directory"]
    assert r.stderr == b""


def test_writes_are_erofs_and_other_names_enoent(guest_mode, tmp_path):
    mnt = tmp_path / "h"
    mnt.mkdir()
    r = guest(guest_mode, mnt, "echo x > {0}/new; echo st=$?; cat {0}/missing; echo st=$?; "
                               "mkdir {0}/d; echo st=$?".format(mnt))
    assert r.stdout == b"st=1\nst=1\nst=1\n"
    err = r.stderr.decode()
    assert "%s/new: Read-only file system" % mnt in err
    assert "cat: %s/missing: No such file or directory" % mnt in err
    assert "mkdir: cannot create directory ‘%s/d’: Read-only file system" % mnt in err
    assert not (mnt / "new").exists() and os.listdir(mnt) == []  # the host saw nothing
