"""Unix sockets bound and connected by path, in the current directory: each call and
its errno (tests/test_file_semantics.py)."""
import os
import socket
import stat

from caselib import say as t

socket.setdefaulttimeout(30)  # (a socket bound elsewhere fails the test, no hang)

os.umask(0o022)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("bind rel", lambda: s.bind("sock"))
s.listen(1)
st = os.lstat("sock")
print("node", stat.S_ISSOCK(st.st_mode), oct(stat.S_IMODE(st.st_mode)))
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("connect abs", lambda: c.connect(os.path.abspath("sock")))
a, _ = s.accept(); c.sendall(b"ping"); print("got", a.recv(4))
t("bind again", lambda: socket.socket(socket.AF_UNIX).bind("sock"))
open("file", "w").close()
t("connect file", lambda: socket.socket(socket.AF_UNIX).connect("file"))
t("connect none", lambda: socket.socket(socket.AF_UNIX).connect("none"))
os.mkdir("sub")
os.chdir("sub")
t("bind in sub", lambda: socket.socket(socket.AF_UNIX).bind("s2"))
os.chdir("..")
print(sorted(set(os.listdir(".")) - {"lost+found"}), os.listdir("sub"))
os.unlink("sock")
t("connect gone", lambda: socket.socket(socket.AF_UNIX).connect("sock"))
# a socket whose path from the host's root is longer than a sockaddr_un holds (108
# bytes), by a relative path that fits: bound, found and connected as natively
deep = "/".join(["d" * 40] * 3)
os.makedirs(deep)
here = os.getcwd()
os.chdir(deep)
ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("bind deep", lambda: ls.bind("s"))
ls.listen(1)
print("deep node", stat.S_ISSOCK(os.lstat("s").st_mode))
dc = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
t("connect deep", lambda: dc.connect("s"))
da, _ = ls.accept(); dc.sendall(b"deep"); print("got", da.recv(4))
t("bind deep again", lambda: socket.socket(socket.AF_UNIX).bind("s"))
os.chdir(here)
t("connect deep from above", lambda: socket.socket(socket.AF_UNIX).connect(deep + "/s"))
