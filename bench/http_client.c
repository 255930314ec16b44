/*
 * http_client: closed-loop HTTP/1.1 keep-alive load client.
 *
 *   http_client HOST PORT PATH CONNS DURATION
 *
 * Opens CONNS keep-alive connections; each sends "GET PATH HTTP/1.1" and
 * reads the whole response (headers, then Content-Length bytes of body)
 * before sending the next request, for DURATION seconds (a float: unlike
 * wrk it can run sub-second windows, which --quick needs). Prints one JSON
 * line:
 *
 *   {"requests": N, "seconds": S, "errors": E, "non_2xx": M}
 *
 * Responses without Content-Length (chunked) are not supported: the
 * benchmark's servers all send it. Same epoll design as echo_client.c.
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
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HDR_MAX 16384

typedef struct {
    int fd;
    int alive;
    int want_out;
    size_t sent;        /* bytes of the request written */
    int in_body;        /* headers parsed, reading body */
    size_t body_left;   /* body bytes still expected */
    int status;         /* status code of the current response */
    size_t hdr_len;     /* bytes collected in hdr */
    char hdr[HDR_MAX];
} conn_t;

static char request[1024];
static size_t request_len;
static char rbuf[65536];
static unsigned long long requests = 0, non_2xx = 0;
static int errors = 0;
static int epfd;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "http_client: %s: %s\n", what, strerror(errno));
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

static void pump_out(conn_t *c) {
    while (c->sent < request_len) {
        ssize_t n = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
            kill_conn(c);
            return;
        }
        c->sent += (size_t)n;
    }
    set_events(c, c->sent < request_len);
}

static void response_done(conn_t *c) {
    requests++;
    if (c->status < 200 || c->status > 299) non_2xx++;
    c->in_body = 0;
    c->hdr_len = 0;
    c->sent = 0;
    pump_out(c);
}

/* Parse the collected header block [0, end); returns 0 or -1 on error. */
static int parse_headers(conn_t *c, size_t end) {
    c->hdr[end - 1] = '\0';
    if (strncmp(c->hdr, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->hdr + 9);
    char *p = c->hdr;
    long cl = -1;
    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, "content-length:", 15) == 0) cl = atol(p + 15);
    }
    if (cl < 0) return -1;
    c->body_left = (size_t)cl;
    return 0;
}

/* Consume n received bytes; returns -1 if the connection must die. */
static int consume(conn_t *c, const char *data, size_t n) {
    while (n > 0) {
        if (c->in_body) {
            size_t take = n < c->body_left ? n : c->body_left;
            c->body_left -= take;
            data += take;
            n -= take;
            if (c->body_left == 0) {
                if (n > 0) return -1; /* no pipelining: nothing may follow */
                response_done(c);
            }
            continue;
        }
        size_t space = HDR_MAX - c->hdr_len;
        size_t take = n < space ? n : space;
        if (take == 0) return -1; /* header block too large */
        size_t from = c->hdr_len >= 3 ? c->hdr_len - 3 : 0;
        memcpy(c->hdr + c->hdr_len, data, take);
        c->hdr_len += take;
        char *found = memmem(c->hdr + from, c->hdr_len - from, "\r\n\r\n", 4);
        if (!found) {
            data += take;
            n -= take;
            continue;
        }
        size_t end = (size_t)(found - c->hdr) + 4;
        size_t used = end - (c->hdr_len - take); /* bytes of data in the header */
        if (parse_headers(c, end) < 0) return -1;
        data += used;
        n -= used;
        c->in_body = 1;
        if (c->body_left == 0) {
            if (n > 0) return -1;
            response_done(c);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s HOST PORT PATH CONNS DURATION\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[3];
    int nconns = atoi(argv[4]);
    double duration = atof(argv[5]);
    if (nconns <= 0 || duration <= 0) { fprintf(stderr, "http_client: bad arguments\n"); return 2; }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", path, host, port);

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
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        c->alive = 1;
        c->want_out = 1;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl add");
    }
    freeaddrinfo(ai);

    struct epoll_event evs[1024];
    double t0 = now(), tend = t0 + duration, t;
    while ((t = now()) < tend && errors < nconns) {
        int n = epoll_wait(epfd, evs, 1024, (int)((tend - t) * 1000.0) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c->alive) continue;
            if (c->sent < request_len) pump_out(c);
            while (c->alive) {
                ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) break;
                if (r <= 0 || consume(c, rbuf, (size_t)r) < 0) { kill_conn(c); break; }
                if ((size_t)r < sizeof rbuf) break;
            }
        }
    }
    double t1 = now();
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"errors\": %d, \"non_2xx\": %llu}\n",
           requests, t1 - t0, errors, non_2xx);
    return errors == nconns ? 1 : 0;
}
