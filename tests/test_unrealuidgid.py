"""unrealuidgid and vusu: virtual identities and fakeroot's table (issue: vufs/vumisc)."""
import os
import tarfile

from conftest import run

SCRIPT = ("vu_insmod unrealuidgid && vusu -c 'id -u; id -g; touch f; chown 0:0 f; "
          "mknod dev c 1 3; mknod blk b 8 1; ls -ln f dev blk; tar cf t.tar f dev blk; "
          "chown 1234:5678 f; stat -c \"%u %g %F\" f; python3 -c \"import os; "
          "print(os.getresuid(), os.getresgid(), os.getgroups())\"'")


def test_vusu_root_owner_and_devices_as_nobody(as_user):
    work = as_user.work
    for name in ("f", "dev", "blk", "t.tar"):
        if (work / name).exists():
            (work / name).unlink()
    r = as_user(["bash", "-c", SCRIPT])
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    assert lines[:2] == ["0", "0"]
    listing = {ln.split()[-1]: ln.split() for ln in lines[2:5]}
    assert listing["f"][0] == "-rw-r--r--" and listing["f"][2:4] == ["0", "0"]
    assert listing["dev"][0].startswith("c") and listing["dev"][4:6] == ["1,", "3"]
    assert listing["blk"][0].startswith("b") and listing["blk"][4:6] == ["8,", "1"]
    assert lines[5] == "1234 5678 regular empty file"
    assert lines[6] == "(0, 0, 0) (0, 0, 0) [0]"
    # the archive made inside keeps root and the devices
    with tarfile.open(work / "t.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert (members["f"].uid, members["f"].gid) == (0, 0)
    assert members["dev"].ischr() and (members["dev"].devmajor, members["dev"].devminor) == (1, 3)
    assert members["blk"].isblk()
    # on the host: files of the real user, and no device node
    for name in ("f", "dev", "blk"):
        st = os.lstat(work / name)
        assert st.st_uid == 65534 and (st.st_mode & 0o170000) == 0o100000, name


def test_identity_calls_follow_the_kernels_shape(tmp_path):
    prog = r'''
import os
print(os.getuid(), os.geteuid())
os.setresuid(1000, 1001, 1002); print(os.getresuid())
os.setreuid(-1, 1005); print(os.getresuid())
os.setreuid(2000, -1); print(os.getresuid())
os.setuid(0); print(os.getresuid())
os.setuid(42); print(os.getresuid())
os.setgroups([5, 6, 7]); print(os.getgroups())
pid = os.fork()
if pid == 0:
    os.setresgid(9, 9, 9)
    os._exit(0 if os.getresuid() == (42, 42, 42) else 1)
print("child", os.waitpid(pid, 0)[1], os.getresgid())
'''
    (tmp_path / "ids.py").write_text(prog)
    r = run("umvu", ["bash", "-c", "vu_insmod unrealuidgid && python3 ids.py && "
                     "python3 -c 'import os; print(os.getresuid())'"], cwd=tmp_path)
    real = os.getuid()
    assert r.stdout.decode().splitlines() == [
        "%d %d" % (real, real), "(1000, 1001, 1002)", "(1000, 1005, 1005)",
        "(2000, 1005, 1005)", "(0, 0, 0)", "(42, 42, 42)", "[5, 6, 7]",
        "child 0 (%d, %d, %d)" % ((os.getgid(),) * 3), "(%d, %d, %d)" % ((real,) * 3)], \
        r.stderr.decode()


def test_fakeroot_table_persists_with_a_db_file(tmp_path):
    db = tmp_path / "owners.json"
    env = {"UMVU_FAKEROOT_DB": str(db)}
    r = run("umvu", ["bash", "-c", "vu_insmod unrealuidgid && vusu -c 'touch g && "
                     "chown 77:88 g && mknod d c 4 5'"], cwd=tmp_path, env=env)
    assert r.returncode == 0 and db.exists(), r.stderr.decode()
    r = run("umvu", ["bash", "-c", "vu_insmod unrealuidgid && stat -c '%u %g %F %t:%T' g d"],
            cwd=tmp_path, env=env)
    assert r.stdout.decode().splitlines() == ["77 88 regular empty file 0:0",
                                              "0 0 character special file 4:5"]
    r = run("umvu", ["bash", "-c", "stat -c '%u %F' d"], cwd=tmp_path)
    assert r.stdout.decode() == "%d regular empty file\n" % os.getuid()


def test_vusu_without_the_module_says_so(as_user):
    r = as_user(["vusu", "-c", "id"])
    assert r.returncode == 1 and b"vu_insmod unrealuidgid" in r.stderr, r.stderr
    r = as_user(["bash", "-c", "vu_insmod unrealuidgid && vusu nosuchuser -c id"])
    assert r.returncode == 1 and b"user nosuchuser does not exist" in r.stderr


def test_proc_status_shows_virtual_ids(as_user):
    r = as_user(["bash", "-c", "vu_insmod unrealuidgid && grep ^Uid /proc/self/status && "
                 "vusu -c 'grep -E \"^(Uid|Gid)\" /proc/self/status; "
                 "grep ^Uid /proc/$PPID/status'"])
    assert r.stdout.decode().splitlines() == [
        "Uid:\t65534\t65534\t65534\t65534", "Uid:\t0\t0\t0\t0", "Gid:\t0\t0\t0\t0",
        "Uid:\t65534\t65534\t65534\t65534"], r.stderr.decode()


def test_modules_check_permissions_with_the_virtual_ids(tmp_path):
    (tmp_path / "m").mkdir()
    script = ("vu_insmod unrealuidgid vufuse && vumount -t vufusememfs none m && "
              "vusu -c 'mkdir m/pub && chmod 777 m/pub && touch m/root-file' && "
              "vusu -s /bin/sh nobody -c 'touch m/x 2>/dev/null || echo denied; "
              "touch m/pub/mine' && stat -c '%n %u' m/root-file m/pub/mine")
    r = run("umvu", ["bash", "-c", script], cwd=tmp_path)
    assert r.stdout.decode().splitlines() == ["denied", "m/root-file 0",
                                              "m/pub/mine 65534"], r.stderr.decode()
