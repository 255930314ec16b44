/*
 * echo_client: closed-loop load client for the echo benchmarks.
 *
 *   echo_client HOST PORT CONNS SIZE DURATION [tls]
 *
 * Opens CONNS TCP connections (TCP_NODELAY) to HOST:PORT. Each connection
 * sends a SIZE-byte message, waits until SIZE bytes have come back, and
 * repeats, for DURATION seconds (a float) counted from the moment all
 * connections are established. Prints one JSON line:
 *
 *   {"requests": N, "seconds": S, "errors": E, "conns": C, "size": B, "tls": 0|1}
 *
 * One thread, non-blocking sockets, level-triggered epoll: the client costs a
 * small fraction of what any Python server spends per round trip, so it is
 * never the bottleneck and is identical for every runtime.
 *
 * Built with -DWITH_TLS (and -lssl -lcrypto) it also accepts "tls": the
 * handshake is done blocking at connect time (no verification: throughput is
 * what is measured), then the same loop runs over SSL_read/SSL_write.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifdef WITH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

typedef struct {
    int fd;
    int alive;
    int want_out;  /* EPOLLOUT registered */
    size_t sent;   /* bytes of the current message written */
    size_t recvd;  /* bytes of the current echo read */
#ifdef WITH_TLS
    SSL *ssl;
#endif
} conn_t;

static int use_tls = 0;
static size_t msg_size;
static char *msg;
static char rbuf[65536];
static unsigned long long requests = 0;
static int errors = 0;
static int epfd;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "echo_client: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void set_events(conn_t *c, int want_out) {
    struct epoll_event ev;
    if (c->want_out == want_out) return;
    ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
    c->want_out = want_out;
}

static void kill_conn(conn_t *c) {
    if (!c->alive) return;
    c->alive = 0;
    errors++;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
}

/* Returns >0 bytes, 0 for "would block", -1 for dead connection. */
static ssize_t do_write(conn_t *c, const char *p, size_t n) {
#ifdef WITH_TLS
    if (use_tls) {
        int r = SSL_write(c->ssl, p, (int)n);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        return -1;
    }
#endif
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -1;
}

/* Returns >0 bytes, 0 for "would block", -1 for EOF or error. */
static ssize_t do_read(conn_t *c) {
#ifdef WITH_TLS
    if (use_tls) {
        int r = SSL_read(c->ssl, rbuf, sizeof rbuf);
        if (r > 0) return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
        return -1;
    }
#endif
    ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (r > 0) return r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1;
}

/* Write as much of the current message as the socket takes. */
static void pump_out(conn_t *c) {
    while (c->sent < msg_size) {
        ssize_t n = do_write(c, msg + c->sent, msg_size - c->sent);
        if (n < 0) { kill_conn(c); return; }
        if (n == 0) break;
        c->sent += (size_t)n;
    }
    set_events(c, c->sent < msg_size);
}

static void pump_in(conn_t *c, int counting) {
    for (;;) {
        ssize_t n = do_read(c);
        if (n < 0) { kill_conn(c); return; }
        if (n == 0) return;
        c->recvd += (size_t)n;
        if (c->recvd >= msg_size) {
            if (counting) requests++;
            c->recvd -= msg_size;
            c->sent = 0;
            pump_out(c);
            if (!c->alive) return;
        }
        /* A short read drained the socket: level-triggered epoll reports any
           later data, so skip the recv() that would only say EAGAIN. TLS may
           hold decrypted bytes internally, so it always reads to WANT_READ. */
        if (!use_tls && (size_t)n < sizeof rbuf) return;
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNS SIZE DURATION [tls]\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    const char *port = argv[2];
    int nconns = atoi(argv[3]);
    msg_size = (size_t)atol(argv[4]);
    double duration = atof(argv[5]);
    if (argc > 6 && strcmp(argv[6], "tls") == 0) use_tls = 1;
    if (nconns <= 0 || msg_size == 0 || duration <= 0) {
        fprintf(stderr, "echo_client: bad arguments\n");
        return 2;
    }
#ifdef WITH_TLS
    SSL_CTX *ctx = NULL;
    if (use_tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) { ERR_print_errors_fp(stderr); return 2; }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
#else
    if (use_tls) {
        fprintf(stderr, "echo_client: built without TLS support\n");
        return 2;
    }
#endif

    msg = malloc(msg_size);
    for (size_t i = 0; i < msg_size; i++) msg[i] = (char)('a' + i % 26);

    struct addrinfo hints = {0}, *ai;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0) { fprintf(stderr, "bad address\n"); return 2; }

    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conn_t *conns = calloc((size_t)nconns, sizeof(conn_t));
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("socket");
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) die("connect");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef WITH_TLS
        if (use_tls) {
            c->ssl = SSL_new(ctx);
            SSL_set_fd(c->ssl, c->fd);
            if (SSL_connect(c->ssl) != 1) { ERR_print_errors_fp(stderr); return 2; }
            SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        }
#endif
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->alive = 1;
        c->want_out = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
    }
    freeaddrinfo(ai);

    struct epoll_event evs[1024];
    double t0 = now(), tend = t0 + duration, t;
    int alive = nconns;
    while ((t = now()) < tend && alive > 0) {
        int timeout_ms = (int)((tend - t) * 1000.0) + 1;
        int n = epoll_wait(epfd, evs, 1024, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c->alive) continue;
            if (c->sent < msg_size) pump_out(c);
            if (c->alive) pump_in(c, 1);
        }
        alive = nconns - errors;
    }
    double t1 = now();
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"errors\": %d, \"conns\": %d, "
           "\"size\": %zu, \"tls\": %d}\n",
           requests, t1 - t0, errors, nconns, msg_size, use_tls);
    fflush(stdout);
    /* Exit without an orderly shutdown: the server sees EOF/reset either way. */
    return errors == nconns ? 1 : 0;
}
