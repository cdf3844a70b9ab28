# A fifo's own mode decides who opens it (tests/test_file_semantics.py)
as() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
# each open (non-blocking) of the fifo $1 by that user, and its answer
opens() {
    as python3 -c 'import os, sys
for flags, name in ((os.O_RDONLY, "r"), (os.O_WRONLY, "w"), (os.O_RDWR, "rw")):
    try:
        os.close(os.open(sys.argv[1], flags | os.O_NONBLOCK))
        print(sys.argv[1], name, 0)
    except OSError as e:
        print(sys.argv[1], name, e.strerror)' "$1"
}
mkfifo -m 600 closed && mkfifo -m 666 open && mkfifo -m 644 ro
exec 3<> open && exec 3>&-  # (root opens one first: what umvu makes then is root's)
for f in closed open ro; do
    opens $f
done
# a fifo of the user's own (mode 600) in its own directory: open by its owner, and a
# reader waiting while the same user's other calls are served, until a writer comes
mkdir own && chown 65534:65534 own
as mkfifo -m 600 own/mine
opens own/mine
as sh -c 'cat own/mine > own/got & ls own > /dev/null; echo line > own/mine; wait; cat own/got'
# the same with only the effective ids dropped (as pjdfstest's -u/-g)
python3 -c 'import os
os.setgroups([65534]); os.setegid(65534); os.seteuid(65534)
os.mkfifo("own/eff", 0o600)
for flags, name in ((os.O_RDONLY, "r"), (os.O_RDWR, "rw")):
    try:
        os.close(os.open("own/eff", flags | os.O_NONBLOCK))
        print("own/eff", name, 0)
    except OSError as e:
        print("own/eff", name, e.strerror)'
