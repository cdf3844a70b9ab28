/* vunet_stack: the process behind a vunetvdestack stack (umvu/submodules/vunetvdestack.py).
 *
 *   vunet_stack CTL_FD VDE_URL IFNAME
 *
 * It detaches from umvu (umvu's tracer waits for every child of its own, so the keeper
 * is a grandchild: the first process exits at once), connects to the VDE network, and
 * makes a user+network namespace of its own user (no root, no device node):
 *
 *   the stack's namespace      lo, IFNAME (one end of a veth pair), no address, down
 *   a second namespace          the other end, "vdeport", up, with no address; a child
 *     of the same user ns       copies frames between it (an AF_PACKET socket) and VDE
 *
 * IFNAME has no checksum or segmentation offloads, so every frame that leaves it is a
 * whole Ethernet frame with its checksums, as a tap would give it.
 *
 * Then it serves umvu on CTL_FD (a SOCK_SEQPACKET socket): a request
 * {int32 op, domain, type, protocol} is answered {int32 ret} (ret < 0: -errno), with the
 * new socket made in the stack's namespace as SCM_RIGHTS for OP_SOCKET; OP_DESTROY
 * aborts every TCP and UDP socket of the stack (sock_diag SOCK_DESTROY: the guest's next
 * call on one fails with ECONNABORTED). The first message on CTL_FD says whether the
 * stack is up: {int32 0, int32 the keeper's pid} or {int32 errno, char message[]} (what
 * failed; umvu adds the errno's text). When CTL_FD closes (umvu
 * unmounted the stack, or died) the sockets are aborted and the keeper exits; the frame
 * copier sees the keeper's end of a pipe close and leaves the switch, and with the
 * second namespace IFNAME goes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <libvdeplug.h>

#define OP_SOCKET 1
#define OP_DESTROY 2
#define PORT_NAME "vdeport"

struct request { int32_t op, domain, type, protocol; };

static int ctl = -1;

/* the first message: the stack is up (0), or why not; then exit */
static void fail(int err, const char *fmt, ...)
{
	char buf[512];
	int32_t code = err ? err : EIO;
	memcpy(buf, &code, 4);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + 4, sizeof buf - 4, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > (int)sizeof buf - 5)
		n = sizeof buf - 5;
	if (send(ctl, buf, 4 + n, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "vunet_stack: %s\n", buf + 4);
	_exit(1);
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, text, strlen(text));
	int saved = errno;
	close(fd);
	errno = saved;
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* ------------------------------------------------------------------ netlink */
struct nlreq {
	struct nlmsghdr h;
	char buf[1024];
};

static struct rtattr *add_attr(struct nlmsghdr *h, int type, const void *data, int len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void end_nest(struct nlmsghdr *h, struct rtattr *nest)
{
	nest->rta_len = (char *)h + h->nlmsg_len - (char *)nest;
}

/* send one request, read its ack: 0 or -errno */
static int nl_talk(int nl, struct nlmsghdr *h)
{
	if (send(nl, h, h->nlmsg_len, 0) < 0)
		return -errno;
	char buf[8192];
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof buf, 0);
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, n);
		     r = NLMSG_NEXT(r, n)) {
			if (r->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
		}
	}
}

/* the veth pair: ifname here, PORT_NAME in the namespace of peer_ns */
static int make_veth(const char *ifname, int peer_ns)
{
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		return -errno;
	struct nlreq req;
	memset(&req, 0, sizeof req);
	req.h.nlmsg_type = RTM_NEWLINK;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	add_attr(&req.h, IFLA_IFNAME, ifname, strlen(ifname) + 1);
	struct rtattr *info = add_attr(&req.h, IFLA_LINKINFO, NULL, 0);
	add_attr(&req.h, IFLA_INFO_KIND, "veth", 4);
	struct rtattr *data = add_attr(&req.h, IFLA_INFO_DATA, NULL, 0);
	struct rtattr *peer = add_attr(&req.h, VETH_INFO_PEER, NULL, 0);
	req.h.nlmsg_len += sizeof(struct ifinfomsg); /* the peer's (zeroed) ifinfomsg */
	add_attr(&req.h, IFLA_IFNAME, PORT_NAME, sizeof PORT_NAME);
	uint32_t fd = peer_ns;
	add_attr(&req.h, IFLA_NET_NS_FD, &fd, 4);
	end_nest(&req.h, peer);
	end_nest(&req.h, data);
	end_nest(&req.h, info);
	int r = nl_talk(nl, &req.h);
	close(nl);
	return r;
}

/* no offloads on ifname: whole frames with their checksums leave it */
static void no_offloads(const char *ifname)
{
	static const uint32_t cmds[] = {ETHTOOL_STXCSUM, ETHTOOL_SSG, ETHTOOL_STSO,
					ETHTOOL_SGSO, ETHTOOL_SGRO, ETHTOOL_SRXCSUM};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	for (unsigned i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		struct ethtool_value v = {.cmd = cmds[i], .data = 0};
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
		ifr.ifr_data = (void *)&v;
		ioctl(s, SIOCETHTOOL, &ifr); /* (a feature the device lacks: fine) */
	}
	close(s);
}

static int link_up(const char *ifname)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		r = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (r == 0 && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		r = -errno;
	close(s);
	return r;
}

/* abort every TCP and UDP socket of this namespace: how many */
static int destroy_all(void)
{
	static const int fams[] = {AF_INET, AF_INET6};
	static const int protos[] = {IPPROTO_TCP, IPPROTO_UDP};
	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return -errno;
	int count = 0;
	for (unsigned f = 0; f < 2; f++) {
		for (unsigned p = 0; p < 2; p++) {
			struct {
				struct nlmsghdr h;
				struct inet_diag_req_v2 r;
			} q;
			memset(&q, 0, sizeof q);
			q.h.nlmsg_len = sizeof q;
			q.h.nlmsg_type = SOCK_DIAG_BY_FAMILY;
			q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
			q.r.sdiag_family = fams[f];
			q.r.sdiag_protocol = protos[p];
			q.r.idiag_states = ~0U;
			if (send(nl, &q, sizeof q, 0) < 0)
				continue;
			/* the sockets first, then each aborted (not while the dump runs) */
			struct inet_diag_sockid *ids = NULL;
			size_t nids = 0, cap = 0;
			char buf[16384];
			int done = 0;
			while (!done) {
				ssize_t n = recv(nl, buf, sizeof buf, 0);
				if (n <= 0)
					break;
				for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, n);
				     h = NLMSG_NEXT(h, n)) {
					if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
						done = 1;
						break;
					}
					struct inet_diag_msg *m = NLMSG_DATA(h);
					if (nids == cap) {
						cap = cap ? 2 * cap : 64;
						void *grown = realloc(ids, cap * sizeof *ids);
						if (!grown)
							break;
						ids = grown;
					}
					ids[nids++] = m->id;
				}
			}
			for (size_t i = 0; i < nids; i++) {
				q.h.nlmsg_type = SOCK_DESTROY;
				q.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
				q.r.id = ids[i];
				if (nl_talk(nl, &q.h) == 0)
					count++;
			}
			free(ids);
		}
	}
	close(nl);
	return count;
}

/* ------------------------------------------------------------------ the frame copier */
/* until the keeper is gone (life: a pipe whose other end only the keeper holds) or the
 * switch (its control connection closes) */
static void copier(VDECONN *conn, int pkt, int life) __attribute__((noreturn));
static void copier(VDECONN *conn, int pkt, int life)
{
	static char frame[65536];
	int data = vde_datafd(conn);
	fcntl(data, F_SETFL, fcntl(data, F_GETFL) | O_NONBLOCK);
	struct pollfd p[4] = {{.fd = pkt, .events = POLLIN}, {.fd = data, .events = POLLIN},
			      {.fd = life, .events = POLLIN}, {.fd = vde_ctlfd(conn), .events = POLLIN}};
	for (;;) {
		if (poll(p, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents & POLLIN) {  /* the stack sent: onto the network */
			for (int i = 0; i < 64; i++) {
				ssize_t n = recv(pkt, frame, sizeof frame, MSG_DONTWAIT);
				if (n <= 0)
					break;
				vde_send(conn, frame, n, 0);
			}
		}
		if (p[1].revents & POLLIN) {  /* from the network: into the stack */
			for (int i = 0; i < 64; i++) {
				ssize_t n = vde_recv(conn, frame, sizeof frame, MSG_DONTWAIT);
				if (n <= 0)
					break;
				if (n >= ETH_HLEN)
					send(pkt, frame, n, MSG_DONTWAIT);
			}
		}
		if (p[3].revents & POLLIN && read(p[3].fd, frame, sizeof frame) > 0)
			p[3].revents &= ~POLLIN; /* (the switch said something: nothing to do) */
		if (p[2].revents || p[3].revents ||
		    (p[0].revents | p[1].revents) & (POLLERR | POLLHUP | POLLNVAL))
			break;
	}
	vde_close(conn); /* (its files in the switch's directory go with it) */
	_exit(0);
}

static void copier_main(VDECONN *conn, int ready_w, int go_r) __attribute__((noreturn));
static void copier_main(VDECONN *conn, int ready_w, int go_r)
{
	char c = 0;
	if (unshare(CLONE_NEWNET) < 0)
		_exit(2);
	if (write(ready_w, &c, 1) != 1 || read(go_r, &c, 1) != 1)
		_exit(2);
	write_file("/proc/sys/net/ipv6/conf/" PORT_NAME "/disable_ipv6", "1");
	int pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	int ifindex = if_nametoindex(PORT_NAME);
	if (pkt < 0 || ifindex == 0 || link_up(PORT_NAME) < 0)
		_exit(3);
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				  .sll_ifindex = ifindex};
	if (bind(pkt, (struct sockaddr *)&sll, sizeof sll) < 0)
		_exit(3);
	int one = 1, size = 4 << 20;
	setsockopt(pkt, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
	if (setsockopt(pkt, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
		setsockopt(pkt, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
	if (setsockopt(pkt, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
		setsockopt(pkt, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
	c = 1;
	if (write(ready_w, &c, 1) != 1)
		_exit(2);
	close(ready_w);
	copier(conn, pkt, go_r);
}

/* ------------------------------------------------------------------ serving umvu */
static int send_reply(int32_t ret, int fd)
{
	struct iovec iov = {.iov_base = &ret, .iov_len = sizeof ret};
	union {
		struct cmsghdr c;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof u.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	return sendmsg(ctl, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static void serve(void) __attribute__((noreturn));
static void serve(void)
{
	for (;;) {
		struct request rq;
		ssize_t n = recv(ctl, &rq, sizeof rq, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof rq) {  /* umvu is gone, or unmounted the stack */
			destroy_all();
			_exit(0);
		}
		if (rq.op == OP_SOCKET) {
			int fd = socket(rq.domain, rq.type & ~SOCK_CLOEXEC, rq.protocol);
			if (fd < 0) {
				send_reply(-errno, -1);
			} else {
				send_reply(0, fd);
				close(fd);
			}
		} else if (rq.op == OP_DESTROY) {
			send_reply(destroy_all(), -1);
		} else {
			send_reply(-EINVAL, -1);
		}
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: vunet_stack CTL_FD VDE_URL IFNAME\n");
		return 2;
	}
	ctl = atoi(argv[1]);
	const char *url = argv[2], *ifname = argv[3];
	if (strlen(ifname) >= IFNAMSIZ || strcmp(ifname, PORT_NAME) == 0)
		fail(EINVAL, "bad interface name %s", ifname);
	pid_t pid = fork();
	if (pid < 0)
		fail(errno, "fork");
	if (pid > 0)
		_exit(0); /* (umvu reaps this one: the keeper is nobody's child of umvu's) */
	setsid();
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT};
	sigaction(SIGCHLD, &sa, NULL);
	fcntl(ctl, F_SETFD, FD_CLOEXEC);
	uid_t uid = geteuid();
	gid_t gid = getegid();
	VDECONN *conn = vde_open((char *)url, "umvu vunetvdestack", NULL);
	if (conn == NULL)
		fail(errno, "cannot connect to the VDE network %s", url);
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
		fail(errno, "cannot make a user and network namespace (this kernel or its "
		     "settings, such as user.max_user_namespaces, do not allow them)");
	char map[64];
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
	if (write_file("/proc/self/uid_map", map) < 0)
		fail(errno, "uid_map");
	snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
	if (write_file("/proc/self/gid_map", map) < 0)
		fail(errno, "gid_map");
	/* ping's datagram sockets for the stack's users (the keeper makes them) */
	write_file("/proc/sys/net/ipv4/ping_group_range", "0 0");

	int ready[2], go[2];
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		fail(errno, "pipe");
	pid_t cp = fork();
	if (cp < 0)
		fail(errno, "fork");
	if (cp == 0) {
		close(ctl);
		close(ready[0]);
		close(go[1]);
		copier_main(conn, ready[1], go[0]);
	}
	close(ready[1]);
	close(go[0]);
	char c;
	if (read(ready[0], &c, 1) != 1)
		fail(EIO, "the frame copier could not make its namespace");
	char nspath[64];
	snprintf(nspath, sizeof nspath, "/proc/%d/ns/net", (int)cp);
	int peer_ns = open(nspath, O_RDONLY | O_CLOEXEC);
	if (peer_ns < 0)
		fail(errno, "%s", nspath);
	int r = make_veth(ifname, peer_ns);
	close(peer_ns);
	if (r < 0)
		fail(-r, "cannot make the interface %s", ifname);
	no_offloads(ifname);
	c = 0;
	if (write(go[1], &c, 1) != 1 || read(ready[0], &c, 1) != 1)
		fail(EIO, "the frame copier could not open %s", PORT_NAME);
	close(ready[0]);
	/* (go[1] stays open while the keeper lives: the copier ends when it closes; the
	 * keeper leaves the VDE connection to the copier, whose vde_close ends it) */
	int32_t ok[2] = {0, getpid()};
	if (send(ctl, ok, sizeof ok, MSG_NOSIGNAL) < 0)
		_exit(1);
	serve();
}
