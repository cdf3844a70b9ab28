"""The core differential suite re-run in a work directory under /unreal/<real dir>:
same output as natively in <real dir> (issue: modules framework, acceptance 2)."""
import pytest

from conftest import differential, run
from test_differential import COMMANDS

# these print the cwd's own name, which differs by the /unreal prefix by design
CWD_NAMED = {3}
CASES = [c for i, c in enumerate(COMMANDS) if i not in CWD_NAMED] + [
    "mkdir -p t/u && echo a > t/u/f && ln t/u/f t/hard && ln -s u/f t/soft && "
    "readlink t/soft && cat t/soft && stat -c '%h %s %F' t/hard t/soft t/u",
    "echo x > a; mv a b; mkdir d; mv b d/; ls -R; rm -r d; ls | wc -l",
    "touch -d '2001-02-03 04:05:06 UTC' f && stat -c '%Y %a' f && chmod 600 f && "
    "stat -c %a f",
    "python3 -c 'import os, shutil, tempfile, pathlib\n"
    "d = tempfile.mkdtemp(dir=\".\"); p = pathlib.Path(d, \"f\"); p.write_text(\"x\" * 5000)\n"
    "shutil.copytree(d, \"copy\"); print(sorted(os.listdir(\"copy\")), "
    "os.path.getsize(\"copy/f\"))\n"
    "shutil.rmtree(d); os.rename(\"copy\", \"moved\"); print(os.path.exists(d), "
    "os.listdir(\"moved\"))'",
    "dd if=/dev/zero of=sparse bs=1 count=1 seek=1M status=none; stat -c %s sparse; "
    "cat sparse | wc -c",
    "printf abc > f; exec 3<>f; printf X >&3; cat f; echo; exec 3>&-",
    "echo hi > f; python3 -c 'import mmap, os; fd = os.open(\"f\", os.O_RDWR); "
    "m = mmap.mmap(fd, 0); m[0:2] = b\"HO\"; m.close(); print(open(\"f\").read())'",
]


@pytest.mark.parametrize("cmd", CASES, ids=range(len(CASES)))
def test_unreal_differential(cmd, tmp_path, guest_mode):
    results = differential(cmd, tmp_path, guest_mode, lambda work, c: (
        "vu_insmod unreal && cd /unreal%s && { %s\n}" % (work, c)))
    assert results[guest_mode] == results["native"], cmd


UNREAL_TWICE = r"""
vu_insmod unreal || exit 99
for p in /unreal/etc/hostname /unreal/unreal/etc/hostname /unreal/unreal/unreal \
         /unreal/unreal/unreal/etc/hostname; do
    python3 -c 'import os, sys
try:
    print(sys.argv[1], open(sys.argv[1], "rb").read())
except OSError as e:
    print(sys.argv[1], e.strerror)' "$p"
done
"""


def test_unreal_shows_the_host_twice_not_thrice(guest_mode):
    """As VUOS's unreal: /unreal and /unreal/unreal are the host tree, and
    /unreal/unreal/unreal is the host's /unreal (absent)."""
    with open("/etc/hostname", "rb") as f:
        host = repr(f.read())
    r = run(guest_mode, ["bash", "-c", UNREAL_TWICE])
    assert r.stdout.decode().splitlines() == [
        "/unreal/etc/hostname " + host, "/unreal/unreal/etc/hostname " + host,
        "/unreal/unreal/unreal No such file or directory",
        "/unreal/unreal/unreal/etc/hostname No such file or directory"], r.stderr
