"""The module framework: vu_* commands, unreal, mountreal, errors, diagnostics
(issue: modules framework, acceptance 1, 4, 5, 6)."""
import pytest

from conftest import REPO, run

MODULES_DIR = REPO / "tests" / "modules"


def sh(mode, script, **kw):
    return run(mode, ["bash", "-c", script], **kw)


def test_unreal_cat_lsmod_rmmod(guest_mode):
    r = sh(guest_mode, "vu_insmod unreal && cat /unreal/etc/hostname && vu_lsmod && "
                       "vu_rmmod unreal && cat /unreal/etc/hostname; echo st=$?; vu_lsmod")
    host = open("/etc/hostname", "rb").read()
    assert r.stdout == host + (b"unreal\t/unreal and /unreal/unreal show the host tree "
                               b"(VUOS test module)\nst=1\n")
    assert b"/unreal/etc/hostname: No such file or directory" in r.stderr


def test_commands_outside_umvu_say_so():
    for cmd in (["vu_lsmod"], ["vu_insmod", "unreal"], ["vumount", "-t", "x", "a", "b"],
                ["vuumount", "/mnt"], ["vuctl", "ps"], ["vuname"], ["vudebug"]):
        r = run("native", cmd)
        assert r.returncode == 1
        assert r.stderr.strip().endswith(b"not running under umvu (start a shell with: umvu bash)")
        assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("script,message", [
    ("vu_insmod nosuchmodule", b"vu_insmod: nosuchmodule: no such module"),
    ("vu_insmod /etc/hostname", b"vu_insmod: /etc/hostname: not a valid umvu module: "
                                b"/etc/hostname is not a Python file"),
    ("vu_insmod unreal; vu_insmod unreal", b"vu_insmod: unreal: module already loaded"),
    ("vu_rmmod unreal", b"vu_rmmod: unreal: module not loaded"),
    ("vu_insmod mountreal; vumount -t nosuchfs none /tmp",
     b"vumount: unknown file system type 'nosuchfs' (loaded types: mountreal; "
     b"load its module with vu_insmod)"),
    ("vu_insmod mountreal; vumount -t mountreal -o ro,bogus / /tmp",
     b"vumount: mountreal on /tmp: unknown mount option 'bogus': Invalid argument"),
    ("vu_insmod mountreal; vumount -t mountreal /nonexistent /tmp",
     b"vumount: mountreal on /tmp: source is not a host directory: Not a directory"),
    ("vu_insmod mountreal; vumount -t mountreal / /nonexistent-target",
     b"vumount: /nonexistent-target: No such file or directory"),
])
def test_bad_input_one_line_error(guest_mode, script, message):
    r = sh(guest_mode, script + "; st=$?; vuctl mounts | tail -n +2 | grep -v ^/unreal; "
                                "exit $st")
    assert r.returncode == 1
    assert r.stderr.strip() == message
    assert r.stdout == b""  # nothing got mounted


def test_buggy_module_gives_eio_and_session_survives(guest_mode, tmp_path):
    log = tmp_path / "umvu.log"
    r = run(guest_mode, ["bash", "-c",
                         "vu_insmod %s/buggy.py && ls /buggy && cat /buggy/file; "
                         "echo st=$?; cat /buggy/file; echo again=$?; echo alive" % MODULES_DIR],
            umvu_opts=("-o", str(log)))
    assert r.stdout == b"exit\nfile\ngreedy\ninterrupt\nplain\nst=1\nagain=1\nalive\n"
    assert r.stderr.count(b"cat: /buggy/file: Input/output error") == 2
    text = log.read_text()
    assert "Traceback" in text and "ZeroDivisionError: deliberate bug in read" in text


def test_mountreal_mount_umount_busy_ro(guest_mode, tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "f").write_text("content\n")
    r = sh(guest_mode, f"""
        vu_insmod mountreal
        vumount -t mountreal {src} {dst} && cat {dst}/f && echo new > {dst}/g
        cd {dst}; vuumount {dst}; echo busy=$?; cd /
        exec 3< {dst}/f; vuumount {dst}; echo busy-fd=$?; exec 3<&-
        vu_rmmod mountreal; echo rmmod-busy=$?
        vuumount {dst}; echo umount=$?; ls {dst} | wc -l
        vumount -r -t mountreal {src} {dst}; echo x > {dst}/h; echo ro=$?; vuumount -f {dst}
        vu_rmmod mountreal; echo rmmod=$?
    """)
    assert r.stdout.decode().split() == ["content", "busy=1", "busy-fd=1", "rmmod-busy=1",
                                         "umount=0", "0", "ro=1", "rmmod=0"]
    assert (src / "g").read_text() == "new\n"  # written through to the host
    assert not (src / "h").exists()
    assert b"Read-only file system" in r.stderr


def test_proc_mounts_df_and_vuctl(guest_mode, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    r = sh(guest_mode, f"""
        vu_insmod unreal mountreal
        vumount -t mountreal -o ro /usr/share/doc "{dst}"
        grep -E 'unreal|mountreal' /proc/mounts
        grep -c mountreal /proc/self/mountinfo
        findmnt -n -o TARGET,FSTYPE "{dst}"
        df "{dst}" | tail -1 | awk '{{print $NF}}'
        exec 7< "{dst}/bash/copyright"
        cd /unreal/tmp
        vuctl mounts | cut -f1-4
        vuctl lsof | grep -c copyright
        vuctl ps | awk -v pid=$$ '$1 == pid {{print $3}}'
    """)
    out = r.stdout.decode().splitlines()
    # (unreal's second layer, /unreal/unreal, is a mount of its own)
    assert out[0:2] == ["/ /unreal unreal rw 0 0", "/unreal /unreal/unreal unreal rw 0 0"]
    out = out[1:]
    assert out[1] == "/usr/share/doc %s mountreal ro 0 0" % dst
    assert out[2] == "1"
    assert out[3].split() == [str(dst), "mountreal"]
    assert out[4] == str(dst)
    assert out[5:9] == ["TARGET\tSOURCE\tTYPE\tMODULE", "/unreal\t/\tunreal\tunreal",
                        "/unreal/unreal\t/unreal\tunreal\tunreal",
                        "%s\t/usr/share/doc\tmountreal\tmountreal" % dst]
    out = out[1:]
    assert out[8] == "3"  # bash, and vuctl and grep it started, all hold fd 7
    assert out[9] == "/unreal/tmp"


def test_vuname_and_vudebug(guest_mode, tmp_path):
    log = tmp_path / "log"
    r = run(guest_mode, ["bash", "-c", "vuname; vuname myview; vuname; vudebug s; "
                         "cat /etc/hostname > /dev/null; vudebug -s; vudebug"],
            umvu_opts=("-V", "first", "-o", str(log)))
    assert r.stdout == b"first\nmyview\n\n"
    text = log.read_text()
    if guest_mode == "umvu-S":  # every call
        assert 'openat(AT_FDCWD, "/etc/hostname", O_RDONLY) = 3  [kernel]' in text, text
    else:  # no module: nothing intercepted, and the trace says so
        assert "umvu: -d s shows the calls umvu intercepts" in text
        assert "/etc/hostname" not in text


def test_efault_on_intercepted_path_syscall(guest_mode):
    code = ("import ctypes, errno; libc = ctypes.CDLL(None, use_errno=True);"
            "r = libc.syscall(4, ctypes.c_void_p(8), ctypes.c_void_p(0));"
            "print(r, errno.errorcode[ctypes.get_errno()])")
    r = sh(guest_mode, "vu_insmod unreal; python3 -c '%s'" % code)
    assert r.stdout == b"-1 EFAULT\n"


def test_rc_files(guest_mode, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".vurc").write_text("vu_insmod unreal\n")
    rc = tmp_path / "other.rc"
    rc.write_text("vu_insmod mountreal\n")
    host = open("/etc/hostname", "rb").read()
    r = run(guest_mode, ["sh", "-c", "vu_lsmod | cut -f1; cat /unreal/etc/hostname"],
            env={"HOME": str(home)})
    assert r.stdout == b"unreal\n" + host
    r = run(guest_mode, ["vu_lsmod"], env={"HOME": str(home)}, umvu_opts=("-N",))
    assert r.stdout == b""
    r = run(guest_mode, ["vu_lsmod"], env={"HOME": str(home)}, umvu_opts=("-f", str(rc)))
    assert r.stdout.split(b"\t")[0] == b"mountreal"
    assert r.returncode == 0


def test_module_by_dotted_name_and_path(guest_mode):
    r = sh(guest_mode, "vu_insmod umvu.modules.unreal && vu_lsmod | cut -f1 && "
                       "vu_insmod %s/buggy.py && vu_lsmod | cut -f1" % MODULES_DIR)
    assert r.stdout == b"unreal\nunreal\nbuggy\n"


def test_modules_stack_through_open_path(guest_mode, tmp_path):
    """A module reads its SOURCE in the guest's view: here a file inside a vufusememfs
    mount, so one module sits on another."""
    mem, top = tmp_path / "mem", tmp_path / "top"
    mem.mkdir()
    top.mkdir()
    r = sh(guest_mode, f"""
        vu_insmod vufuse {MODULES_DIR}/catfs.py
        vumount -t vufusememfs none {mem} && seq 1 1000 > {mem}/data
        vumount -t catfs {mem}/data {top} && ls {top} && cmp {mem}/data {top}/content &&
        echo stacked; vuumount {top}; vuumount {mem}
    """)
    assert r.stdout == b"content\nstacked\n", r.stderr
