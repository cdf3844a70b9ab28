# A fifo's own mode decides who opens it (tests/test_file_semantics.py)
as() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
mkfifo -m 600 closed && mkfifo -m 666 open && mkfifo -m 644 ro
for f in closed open ro; do
    as python3 -c 'import os, sys
for flags, name in ((os.O_RDONLY, "r"), (os.O_WRONLY, "w"), (os.O_RDWR, "rw")):
    try:
        os.close(os.open(sys.argv[1], flags | os.O_NONBLOCK))
        print(sys.argv[1], name, 0)
    except OSError as e:
        print(sys.argv[1], name, e.strerror)' $f
done
