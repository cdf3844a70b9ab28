"""pip install . into a fresh virtual environment gives a working umvu and every
command (as root and as nobody), with man pages that render and agree with --help."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO

SCENARIO = ("mkdir -p {m} && vu_insmod vufuse && vumount -t vufusememfs none {m} && echo ok > {m}/f && "
            "cat {m}/f")


@pytest.fixture(scope="module")
def venv():
    """A venv (no system packages) with umvu installed by pip from the source tree, in a
    directory every user may read."""
    top = Path(tempfile.mkdtemp(prefix="umvu-venv-"))
    os.chmod(top, 0o755)
    v = top / "v"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(v)], check=True, timeout=300)
    r = subprocess.run([str(v / "bin" / "pip"), "install", "-q", str(REPO)],
                       capture_output=True, timeout=1200)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    subprocess.run(["chmod", "-R", "a+rX", str(top)], check=True)
    yield v
    shutil.rmtree(top, ignore_errors=True)


def test_installed_umvu_runs_a_module_scenario(venv, tmp_path):
    """The README's scenario with the venv's umvu, not activated (its commands are found
    beside it); nothing of the source tree on PATH or PYTHONPATH."""
    mnt = tmp_path / "m"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    r = subprocess.run([str(venv / "bin" / "umvu"), "bash", "-c",
                        SCENARIO.format(m=mnt)], env=env, cwd="/", capture_output=True,
                       timeout=120)
    assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr.decode()[-2000:]
    assert list(mnt.iterdir()) == []  # (what was written stayed in the session's mount)


def test_installed_umvu_as_nobody(venv):
    work = Path(tempfile.mkdtemp(prefix="umvu-nobody-"))
    try:
        os.chmod(work, 0o755)
        subprocess.run(["chown", "nobody", str(work)], check=True)
        r = subprocess.run(["runuser", "-u", "nobody", "--", "env", "-i", "PATH=/usr/bin:/bin",
                            "HOME=%s" % work, str(venv / "bin" / "umvu"), "bash", "-c",
                            SCENARIO.format(m=work / "m")], cwd=str(work),
                           capture_output=True, timeout=120)
        assert (r.returncode, r.stdout) == (0, b"ok\n"), r.stderr.decode()[-2000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def man_options(text: str) -> set[str]:
    """The option spellings of a rendered man page's OPTIONS section."""
    section = text.split("\nOPTIONS\n", 1)[1]
    section = re.split(r"\n[A-Z][A-Z ]+\n", section, 1)[0]
    names = set()
    for line in section.splitlines():  # (the tags: indented 7, the text under them 14)
        if re.match(r" {7}-", line):
            names |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", line))
    return names


def help_options(text: str) -> set[str]:
    section = text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    names = set()
    for line in section.splitlines():
        left = line[2:].split("  ")[0] if line.startswith("  -") else ""
        names |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", left))
    return names


COMMANDS = ["umvu", "vu_insmod", "vu_rmmod", "vu_lsmod", "vumount", "vuumount", "vuname",
            "vudebug", "vuctl", "vusu", "vustack"]


@pytest.mark.parametrize("name", COMMANDS)
def test_man_page_renders_and_agrees_with_help(venv, name):
    page = venv / "share" / "man" / "man1" / (name + ".1")
    assert page.exists()
    env = {"PATH": "/usr/bin:/bin", "MANWIDTH": "100", "LC_ALL": "C.UTF-8", "MANPATH": ""}
    man = subprocess.run(["man", "-M", str(venv / "share" / "man"), name], env=env,
                         capture_output=True, timeout=60)
    assert man.returncode == 0, man.stderr
    text = re.sub(r".\x08", "", man.stdout.decode())
    assert text.startswith(name.upper() + "(1)") and "\nSYNOPSIS\n" in text
    helped = subprocess.run([str(venv / "bin" / name), "--help"], env=env,
                            capture_output=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    help_text = helped.stdout.decode()
    usage = help_text.splitlines()[0]
    assert usage.startswith("usage: %s" % name)
    # the synopsis and the options are the same in both
    synopsis = text.split("\nSYNOPSIS\n", 1)[1].split("\n\n", 1)[0].split()
    assert synopsis == usage.split()[1:]
    assert man_options(text) == help_options(help_text), (text, help_text)
