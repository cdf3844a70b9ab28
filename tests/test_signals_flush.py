"""Nothing written is lost to a signal (issue: nothing written is lost, acceptance 1).

A signal that would end umvu (a hangup of the terminal it leads, SIGTERM from `kill`,
`timeout`, a CI runner, to umvu alone or to its process group) is passed on to the guest
as natively the program itself would get it, once; umvu goes on until the last guest is
gone and unmounts: what was written (and synced) is in the image, and the image is clean.
Each scenario runs natively on a host directory and under umvu on an rw+ ext4 image.
"""
import os
import signal
import subprocess

import pexpect
import pytest

from conftest import BASE_ENV, UMVU
from test_vufuseext2 import fsck_clean, mkfs

PROMPT = "PROMPT-OK> "


def debugfs_cat(image, name):
    r = subprocess.run(["debugfs", "-R", "cat /%s" % name, str(image)],
                       capture_output=True)
    return r.stdout


def mounting(image, mnt):
    return ("vu_insmod vufuse && vumount -t vufuseext2 -o rw+ %s %s || exit 99\n"
            % (image, mnt))


def fresh_image(tmp_path):
    image = tmp_path / "disk.img"
    mkfs(image, size="16M")
    return image


def assert_kept(image):
    """The file the scenario wrote is in the image, and the image is clean."""
    assert debugfs_cat(image, "f") == b"data\n"
    rc, report = fsck_clean(image)
    assert rc == 0, report


def start(argv, **kw):
    return subprocess.Popen(argv, env=dict(BASE_ENV), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **kw)


# the guest: writes and syncs a file, says so, then waits for the signal in `wait` (its
# trap says bye and ends the background sleep, natively as under umvu)
SCRIPT = """echo data > {d}/f && sync || exit 98
trap 'echo bye; kill $p; exit 7' TERM HUP USR1
sleep 1000 & p=$!
echo ready
wait $p
echo 'no trap ran'
"""


@pytest.mark.parametrize("sig", ["TERM", "HUP", "USR1"])
@pytest.mark.parametrize("to", ["umvu", "group"])
def test_signal_is_passed_on_once_and_the_image_keeps_the_file(sig, to, tmp_path):
    image = fresh_image(tmp_path)
    results = {}
    for mode in ("native", "umvu"):
        d = tmp_path / ("host" if mode == "native" else "mnt")
        d.mkdir()
        script = SCRIPT.format(d=d)
        argv = ["bash", "-c", script if mode == "native" else mounting(image, d) + script]
        p = start((UMVU if mode == "umvu" else []) + argv)
        assert p.stdout.readline() == b"ready\n"
        signum = getattr(signal, "SIG" + sig)
        if to == "umvu":
            os.kill(p.pid, signum)
        else:
            os.killpg(p.pid, signum)
        out, err = p.communicate(timeout=60)
        results[mode] = (p.returncode, out)
        assert b"Traceback" not in err, err
    assert results["umvu"] == results["native"] == (7, b"bye\n")
    assert_kept(image)


def test_timeout_ends_the_session_and_the_image_keeps_the_file(tmp_path):
    """timeout(1) sends SIGTERM to its child, then to the whole group."""
    image = fresh_image(tmp_path)
    results = {}
    for mode in ("native", "umvu"):
        d = tmp_path / ("host" if mode == "native" else "mnt")
        d.mkdir()
        script = "echo data > %s/f && sync && exec sleep 1000" % d
        argv = ["bash", "-c", script if mode == "native" else mounting(image, d) + script]
        r = subprocess.run(["timeout", "2"] + (UMVU if mode == "umvu" else []) + argv,
                           env=dict(BASE_ENV), capture_output=True, timeout=120)
        results[mode] = r.returncode
    assert results["umvu"] == results["native"] == 124
    assert_kept(image)


def spawn_shell(argv):
    env = dict(BASE_ENV, PS1=PROMPT, TERM="xterm")
    child = pexpect.spawn(argv[0], argv[1:], env=env, timeout=60, encoding="utf-8")
    child.expect_exact(PROMPT)
    return child


def hang_up(child):
    """Close the terminal as a terminal emulator does: the session leader (bash
    natively, umvu here) gets SIGHUP from the kernel."""
    child.ptyproc.fileobj.close()  # (the master's one owner: nothing closes it again)
    child.child_fd = child.ptyproc.fd = -1
    child.closed = child.ptyproc.closed = True
    _, status = os.waitpid(child.pid, 0)
    return status


def test_hangup_of_the_terminal_keeps_the_file_and_nohup_survives(tmp_path):
    image = fresh_image(tmp_path)
    seen = {}
    for mode in ("native", "umvu"):
        d = tmp_path / ("host" if mode == "native" else "mnt")
        d.mkdir()
        marker = tmp_path / ("survived-" + mode)
        child = spawn_shell((UMVU if mode == "umvu" else [])
                            + ["bash", "--norc", "--noprofile", "-i"])
        if mode == "umvu":
            child.sendline(mounting(image, d).strip())
            child.expect_exact(PROMPT)
        child.sendline("echo data > %s/f; sync; echo synced" % d)
        child.expect_exact("synced")
        child.expect_exact(PROMPT)
        # a job that ignores the hangup: it outlives the shell, and umvu waits for it
        started = tmp_path / ("started-" + mode)
        child.sendline("nohup sh -c ': > %s; sleep 1; cat %s/f > %s' >/dev/null 2>&1 &"
                       % (started, d, marker))
        child.expect_exact(PROMPT)
        for _ in range(1200):  # (a hangup before nohup ignores SIGHUP would end it)
            if started.exists():
                break
            subprocess.run(["sleep", "0.05"])
        status = hang_up(child)
        seen[mode] = status
        if mode == "native":  # nohup's job outlives bash natively: wait for it
            for _ in range(600):
                if marker.exists() and marker.read_bytes():
                    break
                subprocess.run(["sleep", "0.05"])
        assert marker.read_bytes() == b"data\n", mode
    assert os.WIFSIGNALED(seen["native"]) and os.WTERMSIG(seen["native"]) == signal.SIGHUP
    # umvu is not killed: it passes SIGHUP on and ends when the nohup job is over, with
    # bash's status: 128+SIGHUP, or 0 when bash read the hung-up terminal's end of file
    # before the SIGHUP umvu passed on reached it (natively the kernel's comes first)
    assert os.WIFEXITED(seen["umvu"]) and os.WEXITSTATUS(seen["umvu"]) in (
        0, 128 + signal.SIGHUP), seen
    assert_kept(image)


def test_sigkill_during_fsyncs_keeps_every_fsynced_file(tmp_path):
    """SIGKILL (nothing can catch it): every file whose fsync returned is intact after
    e2fsck -fy."""
    image = tmp_path / "disk.img"
    mkfs(image, size="32M")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = mounting(image, mnt) + (
        "for i in $(seq 100000); do printf 'file %%d\\n' $i > %s/f$i && sync %s/f$i "
        "&& echo $i || exit 98; done" % (mnt, mnt))
    p = start(UMVU + ["bash", "-c", script])
    synced = 0
    while synced < 40:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        synced = int(line)
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=60)
    r = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True)
    assert r.returncode in (0, 1), r.stdout.decode() + r.stderr.decode()
    for i in range(1, synced + 1):
        assert debugfs_cat(image, "f%d" % i) == b"file %d\n" % i, i
    rc, report = fsck_clean(image)
    assert rc == 0, report


def test_timeout_as_an_unprivileged_user(as_user):
    """The same, as users run umvu: without root."""
    work = as_user.work
    image = work / "timeout.img"
    mnt = work / "timeout-mnt"
    for p in (image, mnt):
        subprocess.run(["rm", "-rf", str(p)], check=True)
    script = mounting(image, mnt) + "echo data > %s/f && sync && exec sleep 1000" % mnt
    argv = as_user.prefix[:-1] + ["sh", "-c", "mke2fs -q -F -t ext4 %s 16M && mkdir %s && "
                                  "exec timeout 2 %s bash -c \"$0\"" % (image, mnt,
                                                                        as_user.prefix[-1]),
                                  script]
    r = subprocess.run(argv, capture_output=True, cwd=str(work), timeout=120)
    assert r.returncode == 124, r.stderr
    assert_kept(image)


@pytest.mark.parametrize("how", ["sync", "sync {f}", "sync -f {f}", "sync -d {f}"])
def test_every_sync_reaches_the_image(how, tmp_path):
    """sync(2), fsync and fdatasync of a file (opened read-only by sync(1)) and syncfs:
    the file is in the image before the session ends (debugfs reads it meanwhile)."""
    image = fresh_image(tmp_path)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    f = mnt / "f"
    r = subprocess.run(UMVU + ["bash", "-c", mounting(image, mnt) + "echo data > %s && %s "
                               "&& debugfs -R 'cat /f' %s 2>/dev/null"
                               % (f, how.format(f=f), image)],
                       env=dict(BASE_ENV), capture_output=True, timeout=120)
    assert (r.returncode, r.stdout) == (0, b"data\n"), r.stderr
