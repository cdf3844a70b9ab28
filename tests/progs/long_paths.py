"""Paths as long as the kernel takes from the guest (PATH_MAX less one, relative to the
cwd), whatever the host path below a mount becomes: each call and its errno
(tests/test_file_semantics.py)."""
import os

from caselib import say as t

os.umask(0o022)
comps = ["%02d" % i * 120 for i in range(16)]  # 16 directories of 240 bytes
here = os.getcwd()
for c in comps:
    os.mkdir(c)
    os.chdir(c)
os.chdir(here)
deep = "/".join(comps)
f = deep + "/" + "f" * (4095 - len(deep) - 1)
print("length", len(f))
t("create", lambda: os.close(os.open(f, os.O_WRONLY | os.O_CREAT, 0o640)))
t("stat", lambda: oct(os.lstat(f).st_mode))
t("chmod", lambda: os.chmod(f, 0o600))
t("mode", lambda: oct(os.lstat(f).st_mode))
t("listing", lambda: len(os.listdir(deep)))
t("rename", lambda: os.rename(f, deep + "/g"))
t("symlink", lambda: os.symlink("g", f))
t("readlink", lambda: os.readlink(f))
t("unlink", lambda: os.unlink(f))
t("too long", lambda: os.lstat(f + "x"))
t("mkdir", lambda: os.mkdir(f))
t("rmdir", lambda: os.rmdir(f))
t("unlink g", lambda: os.unlink(deep + "/g"))
