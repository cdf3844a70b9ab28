"""The commands' errors (issue: nothing written is lost, acceptance 4):
one line on stderr that names the object and the cause, the command's exit status
(1 for a refused action, 2 for a usage error), never a traceback; and what the kernel
would refuse of a mount (a file system onto a file, ro with rw+) is refused."""
import pytest

from conftest import BIN, run

IN_UMVU = "vu_insmod vufuse vufs && "
CASES = [
    # (where, script, status, the line)
    ("native", "vucmd", 2, "vucmd: missing COMMAND (usage: vucmd COMMAND [ARG...]; "
     "COMMAND: umvu vu_insmod vu_rmmod vu_lsmod vumount vuumount vuname vudebug vuctl "
     "vusu vustack)"),
    ("native", "vucmd bogus", 2, "vucmd: unknown command 'bogus' (usage: vucmd COMMAND "
     "[ARG...]; COMMAND: umvu vu_insmod vu_rmmod vu_lsmod vumount vuumount vuname vudebug "
     "vuctl vusu vustack)"),
    ("native", "umvu -d xyz true", 2, "umvu: unknown debug tag 'xyz' (known: Ss)"),
    ("native", "vusu -c id", 1, "vusu: not running under umvu (start a shell with: "
     "umvu bash)"),
    ("guest", "vudebug qx", 1, "vudebug: unknown debug tag 'qx' (known: s)"),
    ("guest", "vuumount /tmp", 1, "vuumount: /tmp: not mounted"),
    ("guest", IN_UMVU + "vumount -t vufusememfs none /etc/hostname", 1,
     "vumount: vufusememfs on /etc/hostname: Not a directory"),
    ("guest", IN_UMVU + "vumount -t vufusememfs -o ro,rw+ none /mnt", 1,
     "vumount: vufusememfs on /mnt: contradictory options ro and rw+: Invalid argument"),
    ("guest", "vusu -c id", 1, "vusu: no uid module loaded (vu_insmod unrealuidgid): "
     "vusu changes virtual ids only"),
    ("guest", IN_UMVU + "vumount -t vufuseext2 /nonexist.img /mnt", 1,
     "vumount: vufuseext2 on /mnt: /nonexist.img: No such file or directory"),
    ("guest", "d=$(mktemp -d) && trap 'rm -rf $d' EXIT && cd $d && truncate -s 64M disk.img && vu_insmod vufuse vudev && "
     "vumount -t vudevpartx disk.img /dev/hda && /usr/sbin/sgdisk -n 1:2048:+20M /dev/hda "
     ">/dev/null && vumount -t vufuseext2 /dev/hda1 /mnt", 1,
     "vumount: vufuseext2 on /mnt: /dev/hda1: cannot mount as ext2/3/4 (Bad magic number "
     "in super-block): Invalid argument"),
    ("guest", "vumount", 2, "vumount: missing operand (usage: vumount [-r|-w] [-B|-R|-M] "
     "[-t TYPE] [-o OPTS] SOURCE TARGET)"),
    ("guest", "vu_insmod", 2, "vu_insmod: missing operand (usage: vu_insmod [-p] "
     "MODULE...)"),
    ("guest", "vu_insmod nosuch", 1, "vu_insmod: nosuch: no such module"),
    ("guest", "vuumount", 2, "vuumount: missing operand (usage: vuumount [-f] [-l] "
     "TARGET)"),
    ("guest", "vu_rmmod", 2, "vu_rmmod: missing operand (usage: vu_rmmod MODULE...)"),
    ("guest", "vu_rmmod nosuch", 1, "vu_rmmod: nosuch: module not loaded"),
    ("guest", "vuname a b", 2, "vuname: too many operands (usage: vuname [NAME])"),
    ("guest", IN_UMVU + "vumount -t vufuseext2 -o offset=abc /etc/hostname /mnt", 1,
     "vumount: vufuseext2 on /mnt: bad value for option 'offset': Invalid argument"),
    ("guest", IN_UMVU + "vumount -t vufusememfs -o bogus none /mnt", 1,
     "vumount: vufusememfs on /mnt: unknown mount option 'bogus': Invalid argument"),
    ("guest", IN_UMVU + "vumount -t vufusememfs -o size=lots none /mnt", 1,
     "vumount: vufusememfs on /mnt: bad value for option 'size': Invalid argument"),
    ("native", "vustack /x true", 1, "vustack: not running under umvu (start a shell "
     "with: umvu bash)"),
    ("guest", "vustack /x true", 1, "vustack: no network module loaded (vu_insmod vunet)"),
    ("guest", "vustack /x", 2, "vustack: missing CMD (usage: vustack [-v] [-s] "
     "[-f FAMILIES] STACK CMD [ARG...])"),
    ("guest", "vustack -f inet,bogus /x true", 2, "vustack: unknown protocol family bogus"),
    ("guest", "vu_insmod vunet && vustack /nonexist true", 1,
     "vustack: /nonexist: No such file or directory"),
    ("guest", "vu_insmod vunet && vustack /etc/hostname true", 1,
     "vustack: /etc/hostname: not a network stack"),
    ("guest", "vu_insmod vunet && vumount -t vunetvdestack vde:///nonexist/sw /dev/net/s", 1,
     "vumount: vunetvdestack on /dev/net/s: cannot connect to the VDE network "
     "vde:///nonexist/sw: No such file or directory"),
]


@pytest.mark.parametrize("where, script, status, line", CASES,
                         ids=[c[1].replace(IN_UMVU, "") for c in CASES])
def test_one_line_naming_the_object(where, script, status, line, guest_mode):
    mode = "native" if where == "native" else guest_mode
    r = run(mode, ["bash", "-c", script], env={"PATH": "%s:/usr/bin:/bin" % BIN})
    err = r.stderr.decode()
    assert b"Traceback" not in r.stderr
    assert (r.returncode, err) == (status, line + "\n")


def test_a_file_is_still_bound_onto_a_file(tmp_path, guest_mode):
    (tmp_path / "src").write_text("bound\n")
    (tmp_path / "dst").write_text("hidden\n")
    r = run(guest_mode, ["bash", "-c", IN_UMVU + f"vumount -t vufs {tmp_path}/src "
                         f"{tmp_path}/dst && cat {tmp_path}/dst"])
    assert (r.returncode, r.stdout) == (0, b"bound\n"), r.stderr
