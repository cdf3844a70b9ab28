""". and .. as the last component of a path that names an entry to make, remove or
rename: each call and its errno, then what is left (tests/test_file_semantics.py)."""
import os

from caselib import say as t


os.makedirs("a/c")
os.mkdir("d")
os.mkdir("e")
open("f", "w").close()
t("rename a/c/..", os.rename, "a/c/..", "y")
t("rename d/.", os.rename, "d/.", "y")
t("rename d/./", os.rename, "d/./", "y")
t("rename to e/..", os.rename, "d", "e/..")
t("rename to e/.", os.rename, "d", "e/.")
t("rmdir d/.", os.rmdir, "d/.")
t("rmdir a/c/..", os.rmdir, "a/c/..")
t("rmdir nod/.", os.rmdir, "nod/.")
t("unlink d/.", os.unlink, "d/.")
t("unlink a/c/..", os.unlink, "a/c/..")
t("mkdir d/.", os.mkdir, "d/.")
t("mkdir d/..", os.mkdir, "d/..")
t("mkdir nod/.", os.mkdir, "nod/.")
t("symlink d/.", os.symlink, "x", "d/.")
t("link to d/.", os.link, "f", "d/.")
t("link to d/..", os.link, "f", "d/..")
t("mknod d/..", os.mknod, "d/..")
print(sorted(set(os.listdir(".")) - {"lost+found"}), sorted(os.listdir("a")), os.listdir("d"))
