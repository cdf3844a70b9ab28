"""umvu's private host files (exec copies of virtual files, fifos of a FUSE file system,
the placeholder directory) are out of reach of other users (issue: views that hold,
other users): the directory is 0700, exec copies 0700, a fifo has its file's mode."""
import pytest

from conftest import run

# A memfs holds a 0700 script and a 0600 fifo; the script reports where its exec copy
# is ($0), the fifo's host file (readlink of its fd), and what another user (nobody,
# via runuser) gets when it lists the directory, reads the copy, writes the fifo.
SCRIPT = r"""
vu_insmod vufuse && vumount -t vufusememfs none {mnt} || exit 9
printf '#!/bin/sh\necho "$0"\n' > {mnt}/secret.sh && chmod 700 {mnt}/secret.sh
mkfifo -m 600 {mnt}/f
copy=$({mnt}/secret.sh) || exit 8
exec 3<>{mnt}/f
fifo=$(readlink /proc/self/fd/3)
dir=$(dirname "$copy")
[ "$(dirname "$fifo")" = "$dir" ] || {{ echo "fifo $fifo not in $dir"; exit 7; }}
stat -c '%a %U' "$dir" "$copy" "$fifo"
runuser -u nobody -- ls "$dir" >/dev/null 2>&1; echo ls=$?
runuser -u nobody -- cat "$copy" >/dev/null 2>&1; echo cat=$?
runuser -u nobody -- sh -c "echo x > $fifo" 2>/dev/null; echo fifo=$?
runuser -u nobody -- sh -c "exec {copy_var}" 2>/dev/null; echo exec=$?
echo owner-writes > "$fifo" &
head -c 13 <&3; echo
"""


@pytest.mark.skipif(__import__("os").getuid() != 0, reason="needs root to be another user")
def test_other_users_cannot_reach_private_files(tmp_path, guest_mode):
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = run(guest_mode, ["bash", "-c", SCRIPT.format(mnt=mnt, copy_var='"$copy"')],
            timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    lines = r.stdout.decode().splitlines()
    assert lines[:3] == ["700 root", "700 root", "600 root"]
    # every probe of the other user fails (status 1/2: permission denied), the owner's
    # own write through the fifo arrives
    assert [line.split("=")[0] for line in lines[3:7]] == ["ls", "cat", "fifo", "exec"]
    assert all(line.split("=")[1] != "0" for line in lines[3:7]), lines
    assert lines[7] == "owner-writes"


# The same, in a session of an unprivileged user (nobody): another one (daemon) probes
# from outside while the session waits on ctl.
UNPRIV = r"""
vu_insmod vufuse && vumount -t vufusememfs none {top}/m || exit 9
printf '#!/bin/sh\necho "$0"\n' > {top}/m/secret.sh && chmod 700 {top}/m/secret.sh
mkfifo -m 600 {top}/m/f
copy=$({top}/m/secret.sh) || exit 8
exec 3<>{top}/m/f
fifo=$(readlink /proc/self/fd/3)
stat -c '%a %U' "$(dirname "$copy")" "$copy" "$fifo"
printf '%s\n%s\n' "$copy" "$fifo" > {top}/paths.tmp && mv {top}/paths.tmp {top}/paths
read go < {top}/ctl
echo owner-writes > "$fifo" &
head -c 13 <&3; echo
"""


@pytest.mark.skipif(__import__("os").getuid() != 0, reason="needs root to be two users")
def test_other_users_cannot_reach_an_unprivileged_sessions_files(as_user):
    import os
    import shutil
    import subprocess
    import time
    top = as_user.work / "private"
    shutil.rmtree(top, ignore_errors=True)
    (top / "m").mkdir(parents=True)
    os.mkfifo(top / "ctl")
    subprocess.run(["chown", "-R", "nobody", str(top)], check=True)
    guest = subprocess.Popen(as_user.prefix + ["bash", "-c", UNPRIV.format(top=top)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=str(as_user.work))
    try:
        for _ in range(600):  # (the session's start: until it says where its files are)
            if (top / "paths").exists() or guest.poll() is not None:
                break
            time.sleep(0.1)
        assert (top / "paths").exists(), guest.communicate(timeout=10)
        copy, fifo = (top / "paths").read_text().split()

        def other(cmd):
            return subprocess.run(["runuser", "-u", "daemon", "--", "sh", "-c", cmd],
                                  capture_output=True, timeout=30).returncode
        probes = [other(f"ls {os.path.dirname(copy)}"), other(f"cat {copy}"),
                  other(f"echo x > {fifo}"), other(f"exec {copy}")]
    finally:
        try:  # (no reader: the session is over already)
            ctl = os.open(top / "ctl", os.O_WRONLY | os.O_NONBLOCK)
            os.write(ctl, b"go\n")
            os.close(ctl)
        except OSError:
            pass
    out, err = guest.communicate(timeout=60)
    assert guest.returncode == 0, (out, err)
    lines = out.decode().splitlines()
    assert lines[:3] == ["700 nobody", "700 nobody", "600 nobody"]
    assert all(p != 0 for p in probes), probes
    assert lines[3] == "owner-writes"
