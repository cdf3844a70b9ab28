# Owner, group and set-ID rules, for a user (nobody, member of group 100) and for root:
# each line what the call answered and the mode:uid:gid after (tests/test_file_semantics.py)
as() { setpriv --reuid=65534 --regid=65534 --groups=100 -- "$@"; }
touch f && chown nobody:nogroup f && chmod 4755 f
as chown 0 f 2>/dev/null; echo give=$? $(stat -c %a:%u:%g f)
as chgrp 100 f; echo chgrp_member=$? $(stat -c %a:%u:%g f)
chmod 4755 f; as chgrp 0 f 2>/dev/null; echo chgrp_other=$? $(stat -c %a:%u:%g f)
chown nobody f; echo root_same=$(stat -c %a f)
chmod 6755 f; chown root f; echo root_chown=$(stat -c %a f)
chmod 6745 f; chown nobody f; echo no_gx=$(stat -c %a f)
touch g && chown nobody:0 g && as chmod 2755 g; echo nonmember_sgid=$? $(stat -c %a g)
touch g2 && chown nobody:100 g2 && as chmod 2755 g2; echo member_sgid=$? $(stat -c %a g2)
touch w && chmod 6777 w && as sh -c 'echo x >> w'; echo write_other=$(stat -c %a w)
touch w2 && chmod 6777 w2 && echo x >> w2; echo write_root=$(stat -c %a w2)
touch w3 && chmod 6767 w3 && as sh -c 'echo x >> w3'; echo write_no_gx=$(stat -c %a w3)
mkdir sd && chgrp 100 sd && chmod 2777 sd && as mkdir sd/sub && as touch sd/file && mkdir sd/rootsub
echo sgid_dir $(stat -c '%a:%g' sd/sub sd/file sd/rootsub)
as sh -c 'umask 0; touch sd/x; chmod 2777 sd/x'; echo $(stat -c '%a:%g' sd/x)
# chown(-1, -1) changes nothing but the ctime, as the kernel's chown does (a tick later)
touch ct && python3 -c 'import os, time
before = os.stat("ct").st_ctime_ns
time.sleep(0.05)
os.chown("ct", -1, -1)
print("chown -1 -1 ctime", os.stat("ct").st_ctime_ns > before)'
# mkdir takes no set-ID bits from its mode (only a set-group-ID parent gives S_ISGID)
python3 -c 'import os; os.umask(0); os.mkdir("md", 0o6777); print("mkdir 6777", oct(os.stat("md").st_mode & 0o7777))'
# chown(-1, -1) of a set-ID file by another user would drop the bits: a change of mode (EPERM)
keep() { as /usr/bin/python3 -c 'import os, sys; os.chown(sys.argv[1], -1, -1)' "$1" 2>/dev/null; }
touch su && chmod 4755 su && keep su; echo chown_keep_other=$? $(stat -c %a su)
touch su2 && chmod 755 su2 && keep su2; echo chown_keep_plain=$? $(stat -c %a su2)
