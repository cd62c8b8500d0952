/*
 * ktpeer: the TIPC test program of the utipc kernel-peer guest.
 *
 * It runs inside a qemu guest booted by scripts/kernel-peer.sh (Linux kernel
 * TIPC, tipc.ko) and talks to other TIPC nodes: other guests or utipc.
 * Built on the host with `gcc -static` against the host's <linux/tipc.h>.
 *
 * Usage:
 *   ktpeer addr [wait=S]          wait (10 s by default) until the node has its
 *                                 address (after the kernel's 1 s address
 *                                 trial), print ADDR
 *   ktpeer ROLE [key=value ...]   run a role: echo, client, conn, topo, idle,
 *                                 status
 *
 * Every line meant for the host is one write() of the form
 *   KTPEER <EVENT> <fields...> up=<guest uptime in seconds>
 * See tests/kernel-peer/README.md for the list of events.
 *
 * Options (key=value, all optional):
 *   until=S         guest uptime (s) at which the role stops      [none]
 *   wait=S          client: how long to wait for each service     [60]
 *   burst=N         client: datagrams in the burst test           [300]
 *   mcast_expect=N  client: replies expected to the multicast;
 *                   0 = at least one                              [2]
 *   stream_bytes=N  client: bytes echoed over the stream          [65536]
 *   status=S        print link/node/name-table status every S s;
 *                   0 = off (role `status` defaults to 5)         [0]
 *   final=1         print link/node/name-table status when the role ends
 *   linkstatus=0|1  print `tipc link list` after each link event  [1]
 *   quiet=1         echo: do not print a line per datagram
 *   linger=S        stay S more seconds after the role (bounded by until)
 *   svc_topo=1      echo: also subscribe to {18888,0,~0} (PORTS) on the
 *                   node's own topology server and print its events
 *   peer=ADDR       conn: node address (decimal) of the node whose topology
 *                   server {1,1} to subscribe to over the network      [none]
 *   stream_inst=N   client, conn: instance of the stream service       [18]
 *   seq_inst=N      client, conn: instance of the seqpacket service;
 *                   0 = no seqpacket test                              [19]
 *   abort_inst=N    conn: instance of the stream service whose peer the
 *                   host kills; 0 = no abort test                      [0]
 *   bind_inst=N     conn: bind {18888,N} at start, unbind it after the
 *                   abort test; 0 = none                               [0]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/tipc.h>

/* Services of the echo role (type 18888). */
#define SVC            18888u
#define INST_RDM       17u
#define INST_STREAM    18u
#define INST_SEQPACKET 19u
#define RANGE_LO       100u
#define RANGE_HI       199u
#define RANGE_PROBE    150u	/* instance the client sends to inside the range */
#define MCAST_LO       0u
#define MCAST_HI       1000u

#define MAX_MSG        TIPC_MAX_USER_MSG_SIZE	/* 66000 */
#define TIPC_BIN       "/usr/sbin/tipc"

static struct {
	double until;
	double wait;
	int burst;
	int mcast_expect;
	long stream_bytes;
	double status;
	int final;
	int linkstatus;
	int quiet;
	double linger;
	int svc_topo;
	uint32_t peer;
	uint32_t stream_inst;
	uint32_t seq_inst;
	uint32_t abort_inst;
	uint32_t bind_inst;
} opt = {
	.until = 0, .wait = 60, .burst = 300, .mcast_expect = 2,
	.stream_bytes = 65536, .status = 0, .final = 0, .linkstatus = 1,
	.quiet = 0, .linger = 0, .svc_topo = 0, .peer = 0,
	.stream_inst = INST_STREAM, .seq_inst = INST_SEQPACKET, .abort_inst = 0,
	.bind_inst = 0,
};

/* ------------------------------------------------------------ output */

static double uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* One marker line, written with a single write() so lines do not mix. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[1200];
	size_t n;
	va_list ap;

	n = (size_t)snprintf(line, sizeof(line), "KTPEER ");
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 24, fmt, ap);
	va_end(ap);
	n = strlen(line);
	n += (size_t)snprintf(line + n, sizeof(line) - n, " up=%.3f\n", uptime());
	write_all(1, line, n);
}

static const char *sockstr(const struct tipc_socket_addr *id, char *buf, size_t len)
{
	snprintf(buf, len, "%08x:%u", id->node, id->ref);
	return buf;
}

/* Seconds left before `until`, capped at `cap` (cap < 0: no cap). */
static double left(double cap)
{
	double l = opt.until > 0 ? opt.until - uptime() : 1e9;

	if (cap >= 0 && cap < l)
		l = cap;
	return l > 0 ? l : 0;
}

static int ms(double seconds)
{
	if (seconds <= 0)
		return 0;
	if (seconds > 3600)
		return 3600 * 1000;
	return (int)(seconds * 1000) + 1;
}

/* ------------------------------------------------ status (tipc tool) */

/* Runs `tipc ARGS...` and prints each output line as STATUS <tag> <line>. */
static void run_tipc(const char *tag, char *const argv[])
{
	int fds[2];
	pid_t pid;
	char buf[4096], line[1024];
	size_t used = 0;
	double end = uptime() + 10;

	if (pipe(fds) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		close(fds[0]);
		close(fds[1]);
		execv(TIPC_BIN, argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		struct pollfd p = { .fd = fds[0], .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, ms(end - uptime())) <= 0)
			break;
		r = read(fds[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n' || used == sizeof(line) - 1) {
				line[used] = 0;
				while (used > 0 && (line[used - 1] == ' ' || line[used - 1] == '\t'))
					line[--used] = 0;
				if (used > 0)
					say("STATUS %s %s", tag, line);
				used = 0;
			} else {
				line[used++] = buf[i] == '\t' ? ' ' : buf[i];
			}
		}
	}
	if (used > 0) {
		line[used] = 0;
		say("STATUS %s %s", tag, line);
	}
	close(fds[0]);
	kill(pid, SIGKILL);	/* no-op if it already exited */
	waitpid(pid, NULL, 0);
}

static void status_links(void)
{
	char *a[] = { "tipc", "link", "list", NULL };

	run_tipc("link", a);
}

static void status_all(void)
{
	char *n[] = { "tipc", "node", "list", NULL };
	char *t[] = { "tipc", "nametable", "show", NULL };

	say("STATUS begin");
	status_links();
	run_tipc("node", n);
	run_tipc("nametable", t);
	say("STATUS end");
}

/* Periodic status: call often; prints when the period has elapsed. */
static double next_status;

static void status_tick(void)
{
	if (opt.status <= 0)
		return;
	if (uptime() >= next_status) {
		status_all();
		next_status = uptime() + opt.status;
	}
}

static int status_timeout_ms(void)
{
	if (opt.status <= 0)
		return -1;
	return ms(next_status - uptime());
}

/* ----------------------------------------------------------- sockets */

static int open_bound(int type, uint32_t stype, uint32_t lo, uint32_t hi)
{
	struct sockaddr_tipc a;
	int sd = socket(AF_TIPC, type, 0);

	if (sd < 0) {
		say("ERROR socket: %s", strerror(errno));
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.family = AF_TIPC;
	a.addrtype = TIPC_SERVICE_RANGE;
	a.scope = TIPC_CLUSTER_SCOPE;
	a.addr.nameseq.type = stype;
	a.addr.nameseq.lower = lo;
	a.addr.nameseq.upper = hi;
	if (bind(sd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		say("ERROR bind {%u,%u,%u}: %s", stype, lo, hi, strerror(errno));
		close(sd);
		return -1;
	}
	if ((type == SOCK_STREAM || type == SOCK_SEQPACKET) && listen(sd, 32) < 0) {
		say("ERROR listen {%u,%u,%u}: %s", stype, lo, hi, strerror(errno));
		close(sd);
		return -1;
	}
	return sd;
}

static void service_addr(struct sockaddr_tipc *a, uint32_t stype, uint32_t inst)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_TIPC;
	a->addrtype = TIPC_SERVICE_ADDR;
	a->scope = TIPC_CLUSTER_SCOPE;
	a->addr.name.name.type = stype;
	a->addr.name.name.instance = inst;
	a->addr.name.domain = 0;
}

/* What recvmsg() told about one datagram. */
struct dgram {
	ssize_t len;
	struct sockaddr_tipc src;
	int has_dst;
	uint32_t dst[3];	/* type, lower, upper (TIPC_DESTNAME) */
	int has_err;
	uint32_t err[2];	/* error code, returned data length (TIPC_ERRINFO) */
	int truncated;
};

static ssize_t recv_dgram(int sd, void *buf, size_t cap, struct dgram *d)
{
	union {
		char b[CMSG_SPACE(16) * 4];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr m;
	struct cmsghdr *c;

	memset(d, 0, sizeof(*d));
	memset(&m, 0, sizeof(m));
	m.msg_name = &d->src;
	m.msg_namelen = sizeof(d->src);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = ctl.b;
	m.msg_controllen = sizeof(ctl.b);
	d->len = recvmsg(sd, &m, MSG_DONTWAIT);
	if (d->len < 0)
		return d->len;
	d->truncated = !!(m.msg_flags & MSG_TRUNC);
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_TIPC)
			continue;
		if (c->cmsg_type == TIPC_DESTNAME && c->cmsg_len >= CMSG_LEN(12)) {
			memcpy(d->dst, CMSG_DATA(c), 12);
			d->has_dst = 1;
		} else if (c->cmsg_type == TIPC_ERRINFO && c->cmsg_len >= CMSG_LEN(8)) {
			memcpy(d->err, CMSG_DATA(c), 8);
			d->has_err = 1;
		}
	}
	return d->len;
}

static int send_all(int sd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(sd, p, n, 0);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---------------------------------------------------------- topology */

/*
 * Connects to the topology server {1,1} of node `node`, 0 meaning this node.
 * For another node the lookup domain is that node: the kernel sends the SYN
 * there and lets that node resolve {1,1}. The connect waits at most `secs`.
 * On failure returns -1 with the reason in `why`.
 */
static int topo_open_at(uint32_t node, double secs, char *why, size_t wlen)
{
	struct sockaddr_tipc a;
	unsigned int tmo = (unsigned int)ms(secs);
	int sd = socket(AF_TIPC, SOCK_SEQPACKET, 0);

	if (sd < 0) {
		snprintf(why, wlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(sd, SOL_TIPC, TIPC_CONN_TIMEOUT, &tmo, sizeof(tmo));
	service_addr(&a, TIPC_TOP_SRV, TIPC_TOP_SRV);
	a.addr.name.domain = node;
	if (connect(sd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		snprintf(why, wlen, "connect {1,1} at %08x: %s", node, strerror(errno));
		close(sd);
		return -1;
	}
	return sd;
}

static int topo_open(void)
{
	char why[120];
	int sd = topo_open_at(0, 8, why, sizeof(why));

	if (sd < 0)
		say("ERROR topology %s", why);
	return sd;
}

/* Sends one subscription; a copy goes to *sent if not NULL. */
static int topo_subscribe_as(int sd, uint32_t type, uint32_t lo, uint32_t hi,
			     uint32_t filter, uint32_t timeout_ms, struct tipc_subscr *sent)
{
	struct tipc_subscr s;

	memset(&s, 0, sizeof(s));
	s.seq.type = type;
	s.seq.lower = lo;
	s.seq.upper = hi;
	s.timeout = timeout_ms;
	s.filter = filter;
	snprintf(s.usr_handle, sizeof(s.usr_handle), "k%u", type % 100000u);
	if (send(sd, &s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
		say("ERROR subscribe {%u,%u,%u}: %s", type, lo, hi, strerror(errno));
		return -1;
	}
	if (sent)
		*sent = s;
	return 0;
}

static int topo_subscribe(int sd, uint32_t type, uint32_t lo, uint32_t hi,
			  uint32_t filter, uint32_t timeout_ms)
{
	return topo_subscribe_as(sd, type, lo, hi, filter, timeout_ms, NULL);
}

static const char *event_name(uint32_t e)
{
	switch (e) {
	case TIPC_PUBLISHED: return "PUBLISHED";
	case TIPC_WITHDRAWN: return "WITHDRAWN";
	case TIPC_SUBSCR_TIMEOUT: return "TIMEOUT";
	default: return "UNKNOWN";
	}
}

/*
 * Prints one topology event as `PFX NODE|LINK|SVC ...`; returns 1 for a link
 * up/down event.
 */
static int topo_print(const char *pfx, const struct tipc_event *ev)
{
	char pb[32];
	uint32_t type = ev->s.seq.type;
	const char *updown = ev->event == TIPC_PUBLISHED ? "UP" :
			     ev->event == TIPC_WITHDRAWN ? "DOWN" : event_name(ev->event);

	if (type == TIPC_NODE_STATE) {
		if (ev->event == TIPC_SUBSCR_TIMEOUT)
			say("%s NODE TIMEOUT", pfx);
		else
			say("%s NODE %s node=%08x", pfx, updown, ev->found_lower);
		return 0;
	}
	if (type == TIPC_LINK_STATE) {
		if (ev->event == TIPC_SUBSCR_TIMEOUT) {
			say("%s LINK TIMEOUT", pfx);
			return 0;
		}
		/* the kernel publishes {2, peer, peer} with port <own node:bearer id> */
		say("%s LINK %s peer=%08x bearer_id=%u", pfx, updown, ev->found_lower,
		    ev->port.ref);
		return 1;
	}
	if (ev->event == TIPC_SUBSCR_TIMEOUT)
		say("%s SVC TIMEOUT type=%u lower=%u upper=%u", pfx, type, ev->s.seq.lower,
		    ev->s.seq.upper);
	else
		say("%s SVC %s type=%u lower=%u upper=%u port=%s", pfx, event_name(ev->event),
		    type, ev->found_lower, ev->found_upper, sockstr(&ev->port, pb, sizeof(pb)));
	return 0;
}

/* Reads and prints one event; returns -1 when the connection is gone. */
static int topo_handle(int sd)
{
	struct tipc_event ev;
	ssize_t r = recv(sd, &ev, sizeof(ev), MSG_DONTWAIT);

	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r != (ssize_t)sizeof(ev)) {
		say("ERROR topology recv: %s", r < 0 ? strerror(errno) : "short read");
		return -1;
	}
	if (topo_print("TOPO", &ev) && opt.linkstatus && ev.event != TIPC_SUBSCR_TIMEOUT)
		status_links();
	return 0;
}

/*
 * The client's node and link subscriptions ("watch"): their events are
 * printed while the client waits for a service, and between tests.
 */
static int watch_fd = -1;

static void watch_open(void)
{
	watch_fd = topo_open();
	if (watch_fd < 0)
		return;
	if (topo_subscribe(watch_fd, TIPC_NODE_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER) ||
	    topo_subscribe(watch_fd, TIPC_LINK_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER)) {
		close(watch_fd);
		watch_fd = -1;
	}
}

static void watch_drain(void)
{
	struct pollfd p = { .fd = watch_fd, .events = POLLIN };

	while (watch_fd >= 0 && poll(&p, 1, 0) > 0) {
		if (topo_handle(watch_fd) < 0) {
			close(watch_fd);
			watch_fd = -1;
		}
	}
}

/*
 * Waits until service {type, lo..hi} is published somewhere in the cluster,
 * at most `secs` seconds. Fills *port with the first publication's socket.
 */
static int wait_service(uint32_t type, uint32_t lo, uint32_t hi, double secs,
			struct tipc_socket_addr *port)
{
	double end = uptime() + secs;
	int sd = topo_open();
	int rc = -1;

	if (sd < 0)
		return -1;
	if (topo_subscribe(sd, type, lo, hi, TIPC_SUB_PORTS, (uint32_t)ms(secs)) < 0)
		goto out;
	for (;;) {
		struct pollfd p[2] = { { .fd = sd, .events = POLLIN },
				       { .fd = watch_fd, .events = POLLIN } };
		struct tipc_event ev;
		double l = end - uptime();

		if (l <= 0 || poll(p, watch_fd >= 0 ? 2 : 1, ms(l)) <= 0)
			break;
		if (p[1].revents)
			watch_drain();
		if (!p[0].revents)
			continue;
		if (recv(sd, &ev, sizeof(ev), 0) != (ssize_t)sizeof(ev))
			break;
		if (ev.event == TIPC_PUBLISHED) {
			if (port)
				*port = ev.port;
			rc = 0;
			break;
		}
		if (ev.event == TIPC_SUBSCR_TIMEOUT)
			break;
	}
out:
	close(sd);
	return rc;
}

/* ---------------------------------------------------------- echo role */

static void serve_connection(int sd, const char *kind)
{
	static char buf[MAX_MSG + 1];
	struct sockaddr_tipc peer;
	socklen_t plen = sizeof(peer);
	char pb[32] = "?";
	long msgs = 0, bytes = 0;
	const char *why = "eof";

	if (getpeername(sd, (struct sockaddr *)&peer, &plen) == 0)
		sockstr(&peer.addr.id, pb, sizeof(pb));
	say("CONN open kind=%s peer=%s", kind, pb);
	for (;;) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		ssize_t r;
		int pr = poll(&p, 1, ms(left(-1)));

		if (pr == 0) {
			why = "deadline";
			break;
		}
		if (pr < 0 && errno == EINTR)
			continue;
		r = recv(sd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			why = strerror(errno);
			break;
		}
		if (r == 0)
			break;
		if (send_all(sd, buf, (size_t)r) < 0) {
			why = strerror(errno);
			break;
		}
		msgs++;
		bytes += r;
	}
	say("CONN close kind=%s peer=%s msgs=%ld bytes=%ld reason=%s", kind, pb, msgs,
	    bytes, why);
	close(sd);
}

static void accept_connection(int lsd, const char *kind)
{
	int sd = accept(lsd, NULL, NULL);
	pid_t pid;

	if (sd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			say("ERROR accept %s: %s", kind, strerror(errno));
		return;
	}
	/* one process per connection, so a stuck peer cannot stall the others */
	pid = fork();
	if (pid == 0) {
		serve_connection(sd, kind);
		_exit(0);
	}
	if (pid < 0)
		say("ERROR fork: %s", strerror(errno));
	close(sd);
}

static void echo_datagram(int sd, const char *sockname)
{
	static char buf[MAX_MSG + 1];
	struct dgram d;
	char pb[32];

	if (recv_dgram(sd, buf, sizeof(buf), &d) < 0) {
		if (errno != EAGAIN && errno != EINTR)
			say("ERROR recv %s: %s", sockname, strerror(errno));
		return;
	}
	sockstr(&d.src.addr.id, pb, sizeof(pb));
	if (d.has_err) {
		say("RX %s returned err=%u size=%zd from=%s", sockname, d.err[0], d.len, pb);
		return;
	}
	if (!opt.quiet) {
		if (d.has_dst)
			say("RX %s size=%zd from=%s dst=%u,%u,%u%s", sockname, d.len, pb,
			    d.dst[0], d.dst[1], d.dst[2], d.dst[1] != d.dst[2] ? " mcast" : "");
		else
			say("RX %s size=%zd from=%s", sockname, d.len, pb);
	}
	if (sendto(sd, buf, (size_t)d.len, 0, (struct sockaddr *)&d.src, sizeof(d.src)) < 0)
		say("ERROR echo %s to %s: %s", sockname, pb, strerror(errno));
}

static int role_echo(void)
{
	int rdm = open_bound(SOCK_RDM, SVC, INST_RDM, INST_RDM);
	int rng = open_bound(SOCK_RDM, SVC, RANGE_LO, RANGE_HI);
	int str = open_bound(SOCK_STREAM, SVC, INST_STREAM, INST_STREAM);
	int spk = open_bound(SOCK_SEQPACKET, SVC, INST_SEQPACKET, INST_SEQPACKET);
	int top = topo_open();

	if (rdm < 0 || rng < 0 || str < 0 || spk < 0 || top < 0)
		return 1;
	if (topo_subscribe(top, TIPC_NODE_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER) ||
	    topo_subscribe(top, TIPC_LINK_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER))
		return 1;
	if (opt.svc_topo &&
	    topo_subscribe(top, SVC, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER))
		return 1;
	signal(SIGCHLD, SIG_IGN);	/* connection processes reap themselves */
	say("READY role=echo rdm=%u,%u stream=%u,%u seqpacket=%u,%u range=%u,%u-%u svc_topo=%d",
	    SVC, INST_RDM, SVC, INST_STREAM, SVC, INST_SEQPACKET, SVC, RANGE_LO, RANGE_HI,
	    opt.svc_topo);
	for (;;) {
		struct pollfd p[5] = {
			{ .fd = rdm, .events = POLLIN }, { .fd = rng, .events = POLLIN },
			{ .fd = str, .events = POLLIN }, { .fd = spk, .events = POLLIN },
			{ .fd = top, .events = POLLIN },
		};
		double l = left(-1);
		int t = ms(l), st = status_timeout_ms(), n;

		if (l <= 0)
			break;
		if (st >= 0 && st < t)
			t = st;
		n = poll(p, top >= 0 ? 5 : 4, t);
		if (n < 0 && errno != EINTR) {
			say("ERROR poll: %s", strerror(errno));
			return 1;
		}
		if (n > 0) {
			if (p[0].revents)
				echo_datagram(rdm, "rdm");
			if (p[1].revents)
				echo_datagram(rng, "range");
			if (p[2].revents)
				accept_connection(str, "stream");
			if (p[3].revents)
				accept_connection(spk, "seqpacket");
			if (top >= 0 && p[4].revents && topo_handle(top) < 0) {
				close(top);
				top = -1;
			}
		}
		status_tick();
	}
	return 0;
}

/* --------------------------------------------------------- topo role */

static int role_topo(void)
{
	int top = topo_open();

	if (top < 0)
		return 1;
	if (topo_subscribe(top, TIPC_NODE_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER) ||
	    topo_subscribe(top, TIPC_LINK_STATE, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER) ||
	    topo_subscribe(top, SVC, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER))
		return 1;
	say("READY role=topo subscriptions=node,link,%u", SVC);
	for (;;) {
		struct pollfd p = { .fd = top, .events = POLLIN };
		double l = left(-1);
		int t = ms(l), st = status_timeout_ms(), n;

		if (l <= 0)
			break;
		if (st >= 0 && st < t)
			t = st;
		n = poll(&p, 1, t);
		if (n > 0 && topo_handle(top) < 0)
			return 1;
		status_tick();
	}
	return 0;
}

/* ---------------------------------------------------- idle and status */

static int role_idle(const char *name)
{
	say("READY role=%s", name);
	for (;;) {
		double l = left(-1);
		int t = ms(l), st = status_timeout_ms();

		if (l <= 0)
			break;
		if (st >= 0 && st < t)
			t = st;
		poll(NULL, 0, t);
		status_tick();
	}
	return 0;
}

/* -------------------------------------------------------- client role */

static int n_ok, n_fail;

static void result(const char *test, int ok, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void watch_drain(void);

static void result(const char *test, int ok, const char *fmt, ...)
{
	char detail[800];
	va_list ap;

	watch_drain();	/* topology events first, in time order */
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (ok)
		n_ok++;
	else
		n_fail++;
	say("RESULT %s %s %s", test, ok ? "ok" : "fail", detail);
}

/* Test payload: "KTPE", a 32-bit sequence number, then a pattern of it. */
static void fill(unsigned char *b, size_t n, uint32_t seq)
{
	static const unsigned char magic[4] = { 'K', 'T', 'P', 'E' };

	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(seq * 31u + i * 7u + (i >> 8));
	for (size_t i = 0; i < 4 && i < n; i++)
		b[i] = magic[i];
	for (size_t i = 0; i < 4 && i + 4 < n; i++)
		b[i + 4] = (unsigned char)(seq >> (24 - 8 * i));
}

/* Sequence number of a payload, or -1 if it is not one of ours. */
static long payload_seq(const unsigned char *b, size_t n)
{
	if (n < 8 || memcmp(b, "KTPE", 4) != 0)
		return -1;
	return (long)(((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) |
		      ((uint32_t)b[6] << 8) | b[7]);
}

static int payload_ok(const unsigned char *b, size_t n, uint32_t seq)
{
	static unsigned char want[MAX_MSG];

	fill(want, n, seq);
	return memcmp(b, want, n) == 0;
}

static uint32_t next_seq = 1;

/* One datagram to {SVC, inst} and its echo. Returns 1 if the echo is right. */
static int rdm_echo_once(int sd, uint32_t inst, size_t size, double tmo, char *why, size_t wlen,
			 double *rtt_ms, struct tipc_socket_addr *from)
{
	static unsigned char out[MAX_MSG], in[MAX_MSG + 1];
	struct sockaddr_tipc dst;
	uint32_t seq = next_seq++;
	double t0 = uptime(), end = t0 + tmo;

	fill(out, size, seq);
	service_addr(&dst, SVC, inst);
	if (sendto(sd, out, size, 0, (struct sockaddr *)&dst, sizeof(dst)) != (ssize_t)size) {
		snprintf(why, wlen, "sendto: %s", strerror(errno));
		return 0;
	}
	for (;;) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		struct dgram d;
		double l = end - uptime();

		if (l <= 0 || poll(&p, 1, ms(l)) <= 0) {
			snprintf(why, wlen, "no echo within %.0f s", tmo);
			return 0;
		}
		if (recv_dgram(sd, in, sizeof(in), &d) < 0)
			continue;
		if (d.has_err) {
			snprintf(why, wlen, "message returned with error %u", d.err[0]);
			return 0;
		}
		if (payload_seq(in, (size_t)d.len) != (long)seq)
			continue;	/* a late echo of an earlier test */
		*rtt_ms = (uptime() - t0) * 1000;
		if (from)
			*from = d.src.addr.id;
		if ((size_t)d.len != size || d.truncated) {
			snprintf(why, wlen, "echo has %zd bytes, sent %zu", d.len, size);
			return 0;
		}
		if (!payload_ok(in, size, seq)) {
			snprintf(why, wlen, "echo content differs");
			return 0;
		}
		return 1;
	}
}

static void test_rdm(int sd, const char *name, uint32_t inst, size_t size,
		     const struct tipc_socket_addr *expect_from)
{
	char why[200], pb[32];
	double rtt = 0;
	struct tipc_socket_addr from = { 0, 0 };

	if (!rdm_echo_once(sd, inst, size, 10, why, sizeof(why), &rtt, &from)) {
		result(name, 0, "size=%zu %s", size, why);
		return;
	}
	sockstr(&from, pb, sizeof(pb));
	if (expect_from && (from.node != expect_from->node || from.ref != expect_from->ref)) {
		char eb[32];

		result(name, 0, "size=%zu echo from %s, service is at %s", size, pb,
		       sockstr(expect_from, eb, sizeof(eb)));
		return;
	}
	result(name, 1, "size=%zu from=%s rtt_ms=%.1f", size, pb, rtt);
}

static void test_burst(int sd, int count)
{
	static unsigned char out[256], in[MAX_MSG + 1];
	const size_t size = 64;
	struct sockaddr_tipc dst;
	uint32_t base = next_seq;
	unsigned char *seen = calloc((size_t)count, 1);
	int sent = 0, got = 0, dup = 0, bad = 0, stray = 0;
	double t0 = uptime(), end;

	if (!seen) {
		result("rdm_burst", 0, "out of memory");
		return;
	}
	next_seq += (uint32_t)count;
	service_addr(&dst, SVC, INST_RDM);
	for (int i = 0; i < count; i++) {
		fill(out, size, base + (uint32_t)i);
		if (sendto(sd, out, size, 0, (struct sockaddr *)&dst, sizeof(dst)) != (ssize_t)size) {
			say("ERROR burst sendto #%d: %s", i, strerror(errno));
			break;
		}
		sent++;
	}
	end = uptime() + 30;
	while (got < sent) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		struct dgram d;
		long s;
		double l = end - uptime();

		if (l <= 0 || poll(&p, 1, ms(l)) <= 0)
			break;
		if (recv_dgram(sd, in, sizeof(in), &d) < 0)
			continue;
		if (d.has_err) {
			bad++;
			continue;
		}
		s = payload_seq(in, (size_t)d.len);
		if (s < (long)base || s >= (long)base + count) {
			stray++;
			continue;
		}
		if ((size_t)d.len != size || !payload_ok(in, size, (uint32_t)s)) {
			bad++;
			continue;
		}
		if (seen[s - base]++) {
			dup++;
			continue;
		}
		got++;
	}
	free(seen);
	result("rdm_burst", sent == count && got == count && dup == 0 && bad == 0,
	       "sent=%d echoed=%d dup=%d bad=%d stray=%d ms=%.0f", sent, got, dup, bad, stray,
	       (uptime() - t0) * 1000);
}

static void test_mcast(int sd, int expect)
{
	static unsigned char out[256], in[MAX_MSG + 1];
	const size_t size = 200;
	struct sockaddr_tipc dst;
	struct tipc_socket_addr from[64];
	uint32_t seq = next_seq++;
	int replies = 0, returned = 0, bad = 0;
	double end;
	char list[64 * 20] = "";

	fill(out, size, seq);
	memset(&dst, 0, sizeof(dst));
	dst.family = AF_TIPC;
	dst.addrtype = TIPC_SERVICE_RANGE;
	dst.scope = TIPC_CLUSTER_SCOPE;
	dst.addr.nameseq.type = SVC;
	dst.addr.nameseq.lower = MCAST_LO;
	dst.addr.nameseq.upper = MCAST_HI;
	if (sendto(sd, out, size, 0, (struct sockaddr *)&dst, sizeof(dst)) != (ssize_t)size) {
		result("mcast", 0, "sendto: %s", strerror(errno));
		return;
	}
	/* collect for 3 s, or 1 s after the expected number arrived */
	end = uptime() + 3;
	for (;;) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		struct dgram d;
		double l = end - uptime();

		if (l <= 0 || poll(&p, 1, ms(l)) <= 0)
			break;
		if (recv_dgram(sd, in, sizeof(in), &d) < 0)
			continue;
		if (d.has_err) {
			char pb[32];

			returned++;
			say("INFO mcast copy returned err=%u by %s", d.err[0],
			    sockstr(&d.src.addr.id, pb, sizeof(pb)));
			continue;
		}
		if (payload_seq(in, (size_t)d.len) != (long)seq)
			continue;
		if ((size_t)d.len != size || !payload_ok(in, size, seq)) {
			bad++;
			continue;
		}
		if (replies < 64)
			from[replies] = d.src.addr.id;
		replies++;
		if (expect > 0 && replies == expect && end - uptime() > 1)
			end = uptime() + 1;
	}
	for (int i = 0; i < replies && i < 64; i++) {
		char pb[32];

		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "",
			 sockstr(&from[i], pb, sizeof(pb)));
	}
	result("mcast", bad == 0 && (expect > 0 ? replies == expect : replies > 0),
	       "dst=%u,%u-%u replies=%d expected=%d returned=%d bad=%d from=%s", SVC, MCAST_LO,
	       MCAST_HI, replies, expect, returned, bad, replies ? list : "-");
}

static int connect_service(int type, uint32_t inst, char *why, size_t wlen)
{
	struct sockaddr_tipc dst;
	unsigned int tmo = 10000;
	int sd = socket(AF_TIPC, type, 0);

	if (sd < 0) {
		snprintf(why, wlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(sd, SOL_TIPC, TIPC_CONN_TIMEOUT, &tmo, sizeof(tmo));
	service_addr(&dst, SVC, inst);
	if (connect(sd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		snprintf(why, wlen, "connect {%u,%u}: %s", SVC, inst, strerror(errno));
		close(sd);
		return -1;
	}
	return sd;
}

/* Receives exactly n bytes (stream) within the deadline. */
static int recv_exact(int sd, unsigned char *b, size_t n, double end)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		double l = end - uptime();
		ssize_t r;

		if (l <= 0 || poll(&p, 1, ms(l)) <= 0)
			return -1;
		r = recv(sd, b + got, n - got, MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* Bytes through a stream connection to {SVC, inst}, 8 KiB at a time, each echo checked. */
static void test_stream(const char *name, uint32_t inst, long total)
{
	static unsigned char out[8192], in[8192];
	char why[200];
	double t0 = uptime();
	long done = 0;
	uint32_t seq = next_seq;
	int sd = connect_service(SOCK_STREAM, inst, why, sizeof(why));

	if (sd < 0) {
		result(name, 0, "%s", why);
		return;
	}
	while (done < total) {
		size_t n = total - done < (long)sizeof(out) ? (size_t)(total - done) : sizeof(out);

		fill(out, n, seq);
		if (send_all(sd, (char *)out, n) < 0) {
			result(name, 0, "send after %ld bytes: %s", done, strerror(errno));
			goto out;
		}
		if (recv_exact(sd, in, n, uptime() + 10) < 0) {
			result(name, 0, "echo missing after %ld bytes", done);
			goto out;
		}
		if (memcmp(in, out, n) != 0) {
			result(name, 0, "echo differs after %ld bytes", done);
			goto out;
		}
		done += (long)n;
		seq++;
	}
	result(name, 1, "bytes=%ld chunk=%zu ms=%.0f service=%u,%u", done, sizeof(out),
	       (uptime() - t0) * 1000, SVC, inst);
out:
	next_seq = seq + 1;
	close(sd);
}

/* Messages of several sizes over a seqpacket connection to {SVC, inst}, each echoed whole. */
static void test_seqpacket(const char *name, uint32_t inst)
{
	static const size_t sizes[] = { 1, 100, 1400, 8000, MAX_MSG };
	static unsigned char out[MAX_MSG], in[MAX_MSG + 1];
	char why[200];
	double t0 = uptime();
	int sd = connect_service(SOCK_SEQPACKET, inst, why, sizeof(why));

	if (sd < 0) {
		result(name, 0, "%s", why);
		return;
	}
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		struct pollfd p = { .fd = sd, .events = POLLIN };
		ssize_t r;

		fill(out, n, next_seq++);
		if (send(sd, out, n, 0) != (ssize_t)n) {
			result(name, 0, "send %zu bytes: %s", n, strerror(errno));
			goto out;
		}
		if (poll(&p, 1, 10000) <= 0) {
			result(name, 0, "no echo of the %zu-byte message", n);
			goto out;
		}
		r = recv(sd, in, sizeof(in), 0);
		if (r != (ssize_t)n || memcmp(in, out, n) != 0) {
			result(name, 0, "echo of the %zu-byte message has %zd bytes%s", n, r,
			       r == (ssize_t)n ? " and differs" : "");
			goto out;
		}
	}
	result(name, 1, "messages=5 sizes=1,100,1400,8000,%u ms=%.0f service=%u,%u", MAX_MSG,
	       (uptime() - t0) * 1000, SVC, inst);
out:
	close(sd);
}

static int role_client(void)
{
	struct tipc_socket_addr at17, at_range, at;
	char pb[32];
	double t0;
	int sd, have_rdm;

	watch_open();
	say("READY role=client wait=%.0f", left(opt.wait));
	t0 = uptime();
	have_rdm = wait_service(SVC, INST_RDM, INST_RDM, left(opt.wait), &at17) == 0;
	if (!have_rdm) {
		result("service", 0, "{%u,%u} not published within %.0f s", SVC, INST_RDM,
		       uptime() - t0);
	} else {
		result("service", 1, "{%u,%u} at %s after %.1f s", SVC, INST_RDM,
		       sockstr(&at17, pb, sizeof(pb)), uptime() - t0);
		if (opt.linkstatus)
			status_links();
	}
	sd = socket(AF_TIPC, SOCK_RDM, 0);
	if (sd < 0) {
		say("ERROR socket: %s", strerror(errno));
		return 1;
	}
	if (have_rdm) {
		test_rdm(sd, "rdm_16", INST_RDM, 16, &at17);
		test_rdm(sd, "rdm_1400", INST_RDM, 1400, &at17);
		test_rdm(sd, "rdm_66000", INST_RDM, MAX_MSG, &at17);
	} else {
		result("rdm_16", 0, "no service");
		result("rdm_1400", 0, "no service");
		result("rdm_66000", 0, "no service");
	}
	if (wait_service(SVC, RANGE_PROBE, RANGE_PROBE, left(have_rdm ? 10 : 0), &at_range) == 0)
		test_rdm(sd, "rdm_range", RANGE_PROBE, 100, &at_range);
	else
		result("rdm_range", 0, "{%u,%u} not published", SVC, RANGE_PROBE);
	if (have_rdm) {
		test_burst(sd, opt.burst);
		test_mcast(sd, opt.mcast_expect);
	} else {
		result("rdm_burst", 0, "no service");
		result("mcast", 0, "no service");
	}
	close(sd);
	if (wait_service(SVC, opt.stream_inst, opt.stream_inst, left(have_rdm ? 10 : 0), &at) == 0)
		test_stream("stream", opt.stream_inst, opt.stream_bytes);
	else
		result("stream", 0, "{%u,%u} not published", SVC, opt.stream_inst);
	if (opt.seq_inst != 0) {
		if (wait_service(SVC, opt.seq_inst, opt.seq_inst, left(have_rdm ? 10 : 0), &at) == 0)
			test_seqpacket("seqpacket", opt.seq_inst);
		else
			result("seqpacket", 0, "{%u,%u} not published", SVC, opt.seq_inst);
	}
	watch_drain();
	say("SUMMARY role=client ok=%d fail=%d", n_ok, n_fail);
	return n_fail ? 1 : 0;
}

/* ---------------------------------------------------------- conn role */

/*
 * The abort test: connects to the stream service {SVC, inst}, checks one
 * echo, prints HOLD, then waits (at most `secs`) for the connection to end
 * without anything sent: the host kills the peer after HOLD. The result says
 * how it ended: ECONNRESET for an abort (the peer's socket vanished), "eof"
 * for an orderly shutdown.
 */
static void test_abort(uint32_t inst, double secs)
{
	static unsigned char out[1000], in[MAX_MSG + 1];
	char why[200], pb[32] = "?";
	struct sockaddr_tipc peer;
	socklen_t plen = sizeof(peer);
	uint32_t seq = next_seq++;
	double t_hold, end;
	int sd = connect_service(SOCK_STREAM, inst, why, sizeof(why));

	if (sd < 0) {
		result("abort", 0, "%s", why);
		return;
	}
	fill(out, sizeof(out), seq);
	if (send_all(sd, (char *)out, sizeof(out)) < 0 ||
	    recv_exact(sd, in, sizeof(out), uptime() + 10) < 0 ||
	    memcmp(in, out, sizeof(out)) != 0) {
		result("abort", 0, "the first %zu bytes were not echoed intact", sizeof(out));
		close(sd);
		return;
	}
	if (getpeername(sd, (struct sockaddr *)&peer, &plen) == 0)
		sockstr(&peer.addr.id, pb, sizeof(pb));
	say("HOLD kind=stream service=%u,%u peer=%s", SVC, inst, pb);
	t_hold = uptime();
	end = t_hold + secs;
	for (;;) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		double l = end - uptime();
		ssize_t r;

		if (l <= 0 || poll(&p, 1, ms(l)) == 0) {
			result("abort", 0, "the connection to %s did not end within %.0f s", pb, secs);
			break;
		}
		r = recv(sd, in, sizeof(in), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r > 0) {
			result("abort", 0, "%zd unexpected bytes from %s", r, pb);
			break;
		}
		result("abort", 1, "end=%s errno=%d peer=%s held_s=%.3f",
		       r == 0 ? "eof" : strerror(errno), r == 0 ? 0 : errno, pb, uptime() - t_hold);
		break;
	}
	close(sd);
}

/*
 * The subscriber to another node's topology server (`peer=`): waits until
 * that node is up, connects to its {1,1} over the network (retrying, within
 * `wait`), subscribes to {SVC,0,~0} with TIPC_SUB_PORTS and prints every event
 * as `RTOPO ...`, checking that each carries our subscription back unchanged.
 * Runs until `until`.
 */
static int role_rtopo(void)
{
	struct tipc_subscr sent;
	char why[120] = "", first[120] = "";
	double t0 = uptime(), end = t0 + left(opt.wait);
	int sd = -1, tries = 0;

	if (wait_service(TIPC_NODE_STATE, opt.peer, opt.peer, left(opt.wait), NULL) < 0) {
		say("RTOPO ERROR node %08x not up within %.0f s", opt.peer, uptime() - t0);
		return 1;
	}
	while (sd < 0 && uptime() < end) {
		tries++;
		sd = topo_open_at(opt.peer, end - uptime() < 5 ? end - uptime() : 5, why,
				  sizeof(why));
		if (sd < 0) {
			if (!first[0])
				snprintf(first, sizeof(first), "%s", why);
			poll(NULL, 0, 500);
		}
	}
	if (sd < 0) {
		say("RTOPO ERROR tries=%d first: %s last: %s", tries, first, why);
		return 1;
	}
	if (topo_subscribe_as(sd, SVC, 0, ~0u, TIPC_SUB_PORTS, TIPC_WAIT_FOREVER, &sent) < 0) {
		close(sd);
		return 1;
	}
	say("RTOPO READY node=%08x subscription=%u,0,%u tries=%d%s%s", opt.peer, SVC, ~0u, tries,
	    first[0] ? " first_error=" : "", first);
	for (;;) {
		struct pollfd p = { .fd = sd, .events = POLLIN };
		struct tipc_event ev;
		double l = left(-1);
		ssize_t r;

		if (l <= 0)
			break;
		if (poll(&p, 1, ms(l)) <= 0)
			continue;
		r = recv(sd, &ev, sizeof(ev), MSG_DONTWAIT);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r != (ssize_t)sizeof(ev)) {
			say("RTOPO ERROR recv: %s", r < 0 ? strerror(errno) :
			    r == 0 ? "the server closed the connection" : "not a 48-byte event");
			close(sd);
			return 1;
		}
		if (memcmp(&ev.s, &sent, sizeof(sent)) != 0)
			say("RTOPO ERROR event %u does not carry the subscription back: "
			    "{%u,%u,%u} timeout=%u filter=%u", ev.event, ev.s.seq.type,
			    ev.s.seq.lower, ev.s.seq.upper, ev.s.timeout, ev.s.filter);
		topo_print("RTOPO", &ev);
	}
	close(sd);
	return 0;
}

static pid_t spawn_role(int (*fn)(void))
{
	pid_t pid = fork();

	if (pid == 0) {
		int rc = fn();

		_exit(rc & 0xff);
	}
	if (pid < 0)
		say("ERROR fork: %s", strerror(errno));
	return pid;
}

/* Waits for the processes (they end by `until`), then kills what is left. */
static void reap(pid_t *pids, int n)
{
	for (;;) {
		int alive = 0;

		for (int i = 0; i < n; i++) {
			pid_t r;

			if (pids[i] <= 0)
				continue;
			r = waitpid(pids[i], NULL, WNOHANG);
			if (r == pids[i] || (r < 0 && errno != EINTR))
				pids[i] = -1;
			else
				alive++;
		}
		if (!alive)
			return;
		if (left(-1) <= 0) {
			for (int i = 0; i < n; i++) {
				if (pids[i] > 0) {
					kill(pids[i], SIGKILL);
					waitpid(pids[i], NULL, 0);
				}
			}
			return;
		}
		poll(NULL, 0, ms(left(0.2)));
	}
}

/*
 * Connections and topology against another node (utipc): the echo role with
 * {SVC,0,~0} tracking runs in one process, the `peer=` topology subscriber in
 * another; this one binds {SVC,bind_inst}, runs the stream, seqpacket and
 * abort tests, then unbinds and prints SUMMARY.
 */
static int role_conn(void)
{
	pid_t kids[2] = { -1, -1 };
	struct tipc_socket_addr at;
	double t0;
	int bsd = -1;

	opt.svc_topo = 1;
	kids[0] = spawn_role(role_echo);
	if (opt.peer)
		kids[1] = spawn_role(role_rtopo);
	if (opt.bind_inst) {
		struct sockaddr_tipc a;
		socklen_t len = sizeof(a);
		char pb[32] = "?";

		bsd = open_bound(SOCK_RDM, SVC, opt.bind_inst, opt.bind_inst);
		if (bsd >= 0 && getsockname(bsd, (struct sockaddr *)&a, &len) == 0)
			sockstr(&a.addr.id, pb, sizeof(pb));
		if (bsd >= 0)
			say("BIND type=%u lower=%u upper=%u port=%s", SVC, opt.bind_inst,
			    opt.bind_inst, pb);
	}
	say("READY role=conn stream=%u,%u seqpacket=%u,%u abort=%u,%u peer=%08x", SVC,
	    opt.stream_inst, SVC, opt.seq_inst, SVC, opt.abort_inst, opt.peer);
	t0 = uptime();
	if (wait_service(SVC, opt.stream_inst, opt.stream_inst, left(opt.wait), &at) == 0)
		test_stream("stream", opt.stream_inst, opt.stream_bytes);
	else
		result("stream", 0, "{%u,%u} not published within %.0f s", SVC, opt.stream_inst,
		       uptime() - t0);
	if (opt.seq_inst != 0) {
		if (wait_service(SVC, opt.seq_inst, opt.seq_inst, left(10), &at) == 0)
			test_seqpacket("seqpacket", opt.seq_inst);
		else
			result("seqpacket", 0, "{%u,%u} not published", SVC, opt.seq_inst);
	}
	if (opt.abort_inst != 0) {
		if (wait_service(SVC, opt.abort_inst, opt.abort_inst, left(10), &at) == 0)
			test_abort(opt.abort_inst, left(opt.wait));
		else
			result("abort", 0, "{%u,%u} not published", SVC, opt.abort_inst);
	}
	if (bsd >= 0) {
		/* the line first: every withdrawal event comes after it */
		say("UNBIND type=%u lower=%u upper=%u", SVC, opt.bind_inst, opt.bind_inst);
		close(bsd);
	}
	say("SUMMARY role=conn ok=%d fail=%d", n_ok, n_fail);
	reap(kids, 2);
	return n_fail ? 1 : 0;
}

/* --------------------------------------------------------- addr mode */

static int cmd_addr(double secs)
{
	double end = uptime() + secs;
	int sd = socket(AF_TIPC, SOCK_RDM, 0);

	if (sd < 0) {
		say("ERROR socket: %s (tipc module missing?)", strerror(errno));
		return 1;
	}
	for (;;) {
		struct sockaddr_tipc a;
		socklen_t len = sizeof(a);

		memset(&a, 0, sizeof(a));
		if (getsockname(sd, (struct sockaddr *)&a, &len) == 0 && a.addr.id.node != 0) {
			say("ADDR %08x", a.addr.id.node);
			close(sd);
			return 0;
		}
		if (uptime() >= end)
			break;
		poll(NULL, 0, 50);
	}
	say("ERROR no node address after %.0f s", secs);
	close(sd);
	return 1;
}

/* -------------------------------------------------------------- main */

static int wait_set;

static int parse_opt(const char *kv)
{
	const char *eq = strchr(kv, '=');
	char key[32];
	double v;
	char *endp;

	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
		return -1;
	memcpy(key, kv, (size_t)(eq - kv));
	key[eq - kv] = 0;
	v = strtod(eq + 1, &endp);
	if (*endp != 0 || endp == eq + 1)
		return -1;
	if (!strcmp(key, "until"))
		opt.until = v;
	else if (!strcmp(key, "wait") && v >= 0) {
		opt.wait = v;
		wait_set = 1;
	}
	else if (!strcmp(key, "burst") && v >= 1 && v <= 100000)
		opt.burst = (int)v;
	else if (!strcmp(key, "mcast_expect") && v >= 0)
		opt.mcast_expect = (int)v;
	else if (!strcmp(key, "stream_bytes") && v >= 1)
		opt.stream_bytes = (long)v;
	else if (!strcmp(key, "status"))
		opt.status = v;
	else if (!strcmp(key, "final"))
		opt.final = v != 0;
	else if (!strcmp(key, "linkstatus"))
		opt.linkstatus = v != 0;
	else if (!strcmp(key, "quiet"))
		opt.quiet = v != 0;
	else if (!strcmp(key, "linger"))
		opt.linger = v;
	else if (!strcmp(key, "svc_topo"))
		opt.svc_topo = v != 0;
	else if (!strcmp(key, "peer") && v >= 1 && v <= 4294967295.0 && v == (uint32_t)v)
		opt.peer = (uint32_t)v;
	else if (!strcmp(key, "stream_inst") && v >= 0 && v <= 4294967295.0)
		opt.stream_inst = (uint32_t)v;
	else if (!strcmp(key, "seq_inst") && v >= 0 && v <= 4294967295.0)
		opt.seq_inst = (uint32_t)v;
	else if (!strcmp(key, "abort_inst") && v >= 0 && v <= 4294967295.0)
		opt.abort_inst = (uint32_t)v;
	else if (!strcmp(key, "bind_inst") && v >= 0 && v <= 4294967295.0)
		opt.bind_inst = (uint32_t)v;
	else
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *role;
	int rc;

	if (argc < 2) {
		say("ERROR usage: ktpeer addr|echo|client|conn|topo|idle|status [key=value ...]");
		return 2;
	}
	role = argv[1];
	for (int i = 2; i < argc; i++) {
		if (parse_opt(argv[i]) < 0) {
			say("ERROR bad option '%s'", argv[i]);
			return 2;
		}
	}
	if (!strcmp(role, "addr"))
		return cmd_addr(wait_set ? opt.wait : 10);
	if (!strcmp(role, "status") && opt.status <= 0)
		opt.status = 5;
	next_status = uptime();	/* the first status dump comes right away */

	if (!strcmp(role, "echo"))
		rc = role_echo();
	else if (!strcmp(role, "client"))
		rc = role_client();
	else if (!strcmp(role, "conn"))
		rc = role_conn();
	else if (!strcmp(role, "topo"))
		rc = role_topo();
	else if (!strcmp(role, "idle") || !strcmp(role, "status"))
		rc = role_idle(role);
	else {
		say("ERROR unknown role '%s'", role);
		return 2;
	}
	if (opt.linger > 0) {
		double l = left(opt.linger);

		say("LINGER seconds=%.0f", l);
		poll(NULL, 0, ms(l));
	}
	if (opt.final)
		status_all();
	return rc;
}
