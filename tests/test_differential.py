"""The same command lines natively, under umvu and under umvu -S: same stdout, same
exit status (issue: core, acceptance 2)."""

import pytest

from conftest import REPO, differential

PROGS = REPO / "tests" / "progs"
GIT_ENV = ("GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t "
           "GIT_COMMITTER_EMAIL=t@x GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' "
           "GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'")

COMMANDS = [
    "echo hello world",
    "printf '%s\\n' b a c | sort -r",
    "seq 1 10000 | awk '{s+=$1} END {print s}'",
    "(cd /usr && pwd); pwd | wc -c",
    "x=$(echo sub $(echo nested)); echo \"$x\"",
    "echo data > f; cat f; wc -c < f",
    "exec 3>out; echo via3 >&3; exec 3>&-; cat out",
    "ls /usr/bin > /dev/null; echo $?",
    "false || echo failed; true && echo ok",
    "sh -c 'exit 42'; echo $?",
    "mkdir -p a/b/c && touch a/b/c/f && find a | sort",
    "mkdir src; seq 1 500 > src/n; ln -s n src/l; mkdir src/d; echo z > src/d/z; "
    "tar cf x.tar src && mkdir dst && tar xf x.tar -C dst && diff -r src dst/src && "
    "tar tvf x.tar | awk '{print $1, $3, $6}' | sort",
    "cp -a /usr/share/doc/bash d && ls -lR --time-style=+%s d | sort && diff -r /usr/share/doc/bash d && echo same",
    "sha256sum /usr/bin/bash | cut -c1-64",
    "grep '^root:' /etc/passwd | cut -d: -f1,3",
    "yes | head -n 5",
    "for i in 1 2 3; do (echo $i) & done | sort; wait; echo done",
    "trap 'echo caught' TERM; kill -TERM $$; echo after",
    "sleep 0.1 & wait $!; echo $?",
    "(exit 7); echo $?",
    "python3 %s/pythreads.py" % PROGS,
    "sh %s/cproj.sh" % PROGS,
    "git init -q repo && cd repo && echo content > file && git add file && "
    + GIT_ENV + " git commit -qm first && git log --format='%H %s' && git status --short",
    "ulimit -n; ulimit -s",
    "umask 027; touch g; stat -c %a g",
    "ln -s target link; readlink link; ls -l link | cut -c1",
    "echo m > m1; mv m1 m2; ls m*; cat m2",
    "touch f; chmod 751 f; stat -c '%a %s %F' f",
    "dd if=/dev/zero bs=1k count=300 status=none | md5sum",
    "head -c 100000 /dev/urandom | wc -c",
    "date -u -d @0 '+%Y-%m-%d %H:%M'",
    "id -u; id -g",
    "printf '1\\n2\\n3\\n' | xargs -n1 echo item",
    "cat <<EOF\nheredoc $((6*7))\nEOF",
    "(exec echo replaced); echo after-exec",
    "readlink /proc/self/exe",
    "stat /nonexistent/path; echo status=$?",
    "set -o pipefail; false | true; echo $?",
    "bash -c 'bash -c \"bash -c \\\"bash -c \\\\\\\"echo deep \\\\\\$PPID\\\\\\\" | wc -w\\\"\"'",
    "python3 -c 'import os; print(os.getcwd() == os.path.realpath(\".\"))'",
    "echo t | tee t1 t2 > /dev/null; cat t1 t2",
    "python3 -c 'import multiprocessing as m; print(sum(m.Pool(2).map(abs, range(-50, 50))))'",
    "python3 -c 'import os; r, w = os.pipe(); os.write(w, b\"pipe\"); print(os.read(r, 10))'",
    "echo abc | rev; echo abc | tr a-c A-C",
    "cat /dev/null; cat < /dev/null | wc -l",
    "find /usr/share/doc -maxdepth 1 -name 'bash*' | sort",
    "awk 'BEGIN { while ((\"echo sub\" | getline l) > 0) print \"got\", l }'",
    "exec 2>&1; ls /nope; echo code=$?",
    "mkfifo p; (echo through-fifo > p &); cat p",
    "sh -c 'sleep 5 & kill $!; wait $!; echo killed=$?'",
    "python3 -c 'import subprocess; print(subprocess.run([\"true\"]).returncode)'",
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=range(len(COMMANDS)))
def test_differential(cmd, tmp_path, guest_mode):
    results = differential(cmd, tmp_path, guest_mode)
    assert results[guest_mode] == results["native"], cmd


def test_enough_commands():
    assert len(COMMANDS) >= 40
