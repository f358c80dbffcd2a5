/*
 * dnsmasq - the delivery suites' DNS server.  See dnsmasq.h.
 */
#include "tests/dnsmasq.h"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

uint16_t
dnsmasq_free_port(void)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t len = sizeof sin;
		int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
		uint16_t port = 0;

		ck_assert(u >= 0 && t >= 0);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(u, (struct sockaddr *)&sin, sizeof sin) == 0 &&
		    getsockname(u, (struct sockaddr *)&sin, &len) == 0 &&
		    bind(t, (struct sockaddr *)&sin, sizeof sin) == 0)
			port = ntohs(sin.sin_port);
		close(u);
		close(t);
		if (port != 0)
			return port;
	}
	ck_abort_msg("no free port on 127.0.0.1");
	return 0;
}

/* Whether something answers DNS on 127.0.0.1:port (20 ms, blocking). */
static bool
answers(uint16_t port)
{
	static const unsigned char q[] = {
		0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'p', 'r', 'o', 'b', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1,
	};
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 0, 20000 };
	unsigned char r[512];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	ssize_t n;

	ck_assert(fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	sendto(fd, q, sizeof q, 0, (struct sockaddr *)&sin, sizeof sin);
	n = recv(fd, r, sizeof r, 0);
	close(fd);
	return n >= 12 && r[0] == 0x12 && r[1] == 0x34;
}

void
dnsmasq_start(struct dnsmasq *m, unsigned ttl, bool log_queries,
    const char *const *records, const char *const *extra)
{
	struct passwd *pw = getpwuid(getuid());
	struct group *gr = getgrgid(getgid());

	ck_assert_ptr_nonnull(pw);
	ck_assert_ptr_nonnull(gr);
	memset(m, 0, sizeof *m);
	if (log_queries) {
		snprintf(m->dir, sizeof m->dir, "/tmp/kurier-dnsmasq-XXXXXX");
		ck_assert_ptr_nonnull(mkdtemp(m->dir));
		snprintf(m->log, sizeof m->log, "%s/queries.log", m->dir);
	}
	for (int attempt = 0; attempt < 5; attempt++) {
		char port[32], upstream[64], user[80], group[80], localttl[32], logf[128];
		const char *argv[128];
		size_t argc = 0;
		pid_t parent = getpid(), pid;
		uint16_t p = dnsmasq_free_port(), dead = dnsmasq_free_port();

		snprintf(port, sizeof port, "--port=%u", p);
		snprintf(upstream, sizeof upstream, "--server=/broken.test/127.0.0.1#%u", dead);
		snprintf(user, sizeof user, "--user=%s", pw->pw_name);
		snprintf(group, sizeof group, "--group=%s", gr->gr_name);
		snprintf(localttl, sizeof localttl, "--local-ttl=%u", ttl);
		snprintf(logf, sizeof logf, "--log-facility=%s", log_queries ? m->log : "-");
		argv[argc++] = DNSMASQ_BIN;
		argv[argc++] = "-C";
		argv[argc++] = "/dev/null";
		argv[argc++] = "--keep-in-foreground";
		argv[argc++] = "--no-resolv";
		argv[argc++] = "--no-hosts";
		argv[argc++] = "--bind-interfaces";
		argv[argc++] = "--listen-address=127.0.0.1";
		argv[argc++] = port;
		argv[argc++] = "--pid-file=";
		argv[argc++] = logf;
		if (log_queries)
			argv[argc++] = "--log-queries";
		argv[argc++] = user;
		argv[argc++] = group;
		if (ttl > 0)
			argv[argc++] = localttl;
		argv[argc++] = "--local=/test/";
		argv[argc++] = upstream;
		argv[argc++] = "--server=/refused.test/#";
		for (size_t i = 0; records != NULL && records[i] != NULL && argc < NELEM(argv) - 1; i++)
			argv[argc++] = records[i];
		for (size_t i = 0; extra != NULL && extra[i] != NULL && argc < NELEM(argv) - 1; i++)
			argv[argc++] = extra[i];
		ck_assert_uint_lt(argc, NELEM(argv) - 1);
		argv[argc] = NULL;

		fflush(NULL);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			int null = open("/dev/null", O_RDWR);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(127);
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			execv(DNSMASQ_BIN, (char *const *)argv);
			_exit(127);
		}
		for (int i = 0; i < 250; i++) {
			if (waitpid(pid, NULL, WNOHANG) == pid) {
				pid = 0;
				break;
			}
			if (answers(p)) {
				m->pid = pid;
				m->port = p;
				snprintf(m->server, sizeof m->server, "127.0.0.1:%u", p);
				return;
			}
		}
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
	}
	ck_abort_msg("dnsmasq did not start");
}

void
dnsmasq_stop(struct dnsmasq *m)
{
	if (m->pid <= 0)
		return;
	kill(m->pid, SIGTERM);
	/* A paused server takes the signal once it runs again. */
	kill(m->pid, SIGCONT);
	for (int i = 0; i < 200; i++) {
		if (waitpid(m->pid, NULL, WNOHANG) == m->pid) {
			m->pid = 0;
			return;
		}
		usleep(10000);
	}
	kill(m->pid, SIGKILL);
	waitpid(m->pid, NULL, 0);
	m->pid = 0;
}

void
dnsmasq_pause(struct dnsmasq *m)
{
	int st;

	ck_assert_int_gt(m->pid, 0);
	ck_assert_int_eq(kill(m->pid, SIGSTOP), 0);
	ck_assert_int_eq(waitpid(m->pid, &st, WUNTRACED), m->pid);
	ck_assert_msg(WIFSTOPPED(st), "dnsmasq ended instead of pausing");
}

void
dnsmasq_clean(struct dnsmasq *m)
{
	dnsmasq_stop(m);
	if (m->dir[0] != '\0') {
		unlink(m->log);
		rmdir(m->dir);
		m->dir[0] = '\0';
	}
}

int
dnsmasq_log_count(const struct dnsmasq *m, const char *needle)
{
	char line[1024];
	FILE *f;
	int n = 0;

	if (m->log[0] == '\0' || (f = fopen(m->log, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}
