/* wsreader: many WebSocket clients in one compiled process, for bench/staleness.py.
 *
 * A Python process cannot read 100,000 frames a second; this one reads them with one epoll
 * loop and no allocation per frame, so the load generator is not what a staleness figure
 * measures at 10,000 sockets. It speaks just enough WebSocket for the push channels: the
 * opening handshake, unmasked server frames (text frames scanned for their last "seq":N,
 * pings answered with a masked pong, a close answered and the socket closed).
 *
 *   wsreader HOST PORT PATH SOCKETS RECORDS PAYLOADS
 *
 * PATH "-" skips the handshake: the sockets read frames from the first byte (the kernel floor
 * of bench/kernel_floor.py, where a plain loop of send calls is the server).
 * RECORDS gets, per socket and per read that brought a newer seq, one binary record
 * (uint32 socket, uint32 0, int64 seq, double seconds on CLOCK_MONOTONIC, the clock Python's
 * time.perf_counter reads). The time is the kernel's receive timestamp of the read's first
 * packet (SO_TIMESTAMPNS, moved from the realtime clock to the monotonic one), not the moment
 * this loop got to the socket: sweeping 10,000 sockets takes tens of milliseconds, and that
 * sweep is the reader's delay, not the server's; PAYLOADS gets each distinct seq's frame once (int64 seq, uint32
 * length, the bytes). Both are buffered and written when stdin says "flush"; the answer on
 * stdout is "ok FRAMES LOWEST_LAST_SEQ HIGHEST_SEQ OPEN". "quit" ends it and prints its CPU
 * time ("cpu USER SYSTEM", seconds). "ready N" is printed once every socket is upgraded.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int upgraded;
    int closed;
    int64_t last_seq;
    unsigned char *buf;
    size_t len, cap;
} Sock;

typedef struct {
    uint32_t sock, pad;
    int64_t seq;
    double at;
} Record;

static Record *records;
static size_t nrecords, caprecords;
static unsigned char *seen; /* one byte per seq: its payload was written */
static size_t capseen;
static FILE *payloads;
static uint64_t frames;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double realtime_minus_monotonic;

static void calibrate(void) {
    struct timespec real, mono;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    realtime_minus_monotonic = (double)(real.tv_sec - mono.tv_sec) +
                               (double)(real.tv_nsec - mono.tv_nsec) / 1e9;
}

/* One read; *stamp gets the kernel's receive time of its first packet when it has one. */
static ssize_t read_stamped(int fd, unsigned char *buf, size_t n, double *stamp) {
    struct iovec iov = {.iov_base = buf, .iov_len = n};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof control.buf};
    ssize_t r = recvmsg(fd, &msg, 0);
    if (r <= 0) return r;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            *stamp = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - realtime_minus_monotonic;
            break;
        }
    }
    return r;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void send_all(int fd, const unsigned char *data, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            return; /* the peer is gone: the read side will see it */
        }
        data += w;
        n -= (size_t)w;
    }
}

/* A control frame back to the server: masked (zero mask key), payload under 126 bytes. */
static void send_control(int fd, int opcode, const unsigned char *payload, size_t n) {
    unsigned char frame[2 + 4 + 125];
    if (n > 125) n = 125;
    frame[0] = (unsigned char)(0x80 | opcode);
    frame[1] = (unsigned char)(0x80 | n);
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, payload, n);
    send_all(fd, frame, 6 + n);
}

static void remember(int64_t seq, const unsigned char *payload, size_t n) {
    if (seq < 0) return;
    if ((size_t)seq >= capseen) {
        size_t cap = capseen ? capseen : 1024;
        while ((size_t)seq >= cap) cap *= 2;
        seen = realloc(seen, cap);
        if (!seen) die("realloc");
        memset(seen + capseen, 0, cap - capseen);
        capseen = cap;
    }
    if (seen[seq]) return;
    seen[seq] = 1;
    uint32_t len = (uint32_t)n;
    fwrite(&seq, sizeof seq, 1, payloads);
    fwrite(&len, sizeof len, 1, payloads);
    fwrite(payload, 1, n, payloads);
}

/* The value of the last "seq": in [p, p + n), or -1. */
static int64_t last_seq_in(const unsigned char *p, size_t n) {
    static const char key[] = "\"seq\":";
    const size_t k = sizeof key - 1;
    if (n < k) return -1;
    for (size_t i = n - k + 1; i-- > 0;) {
        if (p[i] == '"' && memcmp(p + i, key, k) == 0) {
            int64_t v = 0;
            size_t j = i + k;
            while (j < n && p[j] >= '0' && p[j] <= '9') v = v * 10 + (p[j++] - '0');
            return v;
        }
    }
    return -1;
}

static void record(uint32_t id, int64_t seq, double at) {
    if (nrecords == caprecords) {
        caprecords = caprecords ? caprecords * 2 : 65536;
        records = realloc(records, caprecords * sizeof *records);
        if (!records) die("realloc");
    }
    records[nrecords++] = (Record){id, 0, seq, at};
}

/* Everything readable on socket s; returns 1 when it just finished its handshake. */
static int on_readable(Sock *s, uint32_t id) {
    int upgraded_now = 0;
    double at = -1;
    for (;;) {
        if (s->cap - s->len < 65536) {
            s->cap = s->cap * 2 + 65536;
            s->buf = realloc(s->buf, s->cap);
            if (!s->buf) die("realloc");
        }
        double stamp = -1;
        ssize_t r = read_stamped(s->fd, s->buf + s->len, s->cap - s->len, &stamp);
        if (r > 0) {
            if (at < 0) at = stamp >= 0 ? stamp : now();
            s->len += (size_t)r;
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(s->fd);
            s->closed = 1;
        }
        break;
    }
    size_t at_byte = 0;
    if (!s->upgraded) {
        unsigned char *end = memmem(s->buf, s->len, "\r\n\r\n", 4);
        if (!end) return 0;
        if (s->len < 12 || memcmp(s->buf + 9, "101", 3) != 0) {
            fprintf(stderr, "handshake refused: %.*s\n", (int)(end - s->buf), s->buf);
            exit(2);
        }
        at_byte = (size_t)(end - s->buf) + 4;
        s->upgraded = 1;
        upgraded_now = 1;
    }
    int64_t newest = -1;
    while (s->len - at_byte >= 2) {
        unsigned char *f = s->buf + at_byte;
        int opcode = f[0] & 0x0F;
        uint64_t n = f[1] & 0x7F;
        size_t head = 2;
        if (n == 126) {
            if (s->len - at_byte < 4) break;
            n = ((uint64_t)f[2] << 8) | f[3];
            head = 4;
        } else if (n == 127) {
            if (s->len - at_byte < 10) break;
            n = 0;
            for (int i = 2; i < 10; i++) n = (n << 8) | f[i];
            head = 10;
        }
        if (s->len - at_byte < head + n) break;
        unsigned char *payload = f + head;
        if (opcode == 1) {
            int64_t seq = last_seq_in(payload, (size_t)n);
            remember(seq, payload, (size_t)n);
            if (seq > newest) newest = seq;
            frames++;
        } else if (opcode == 9 && !s->closed) {
            send_control(s->fd, 10, payload, (size_t)n);
        } else if (opcode == 8 && !s->closed) {
            send_control(s->fd, 8, payload, (size_t)n);
            close(s->fd);
            s->closed = 1;
        }
        at_byte += head + (size_t)n;
    }
    memmove(s->buf, s->buf + at_byte, s->len - at_byte);
    s->len -= at_byte;
    if (newest > s->last_seq) {
        s->last_seq = newest;
        record(id, newest, at);
    }
    return upgraded_now;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: wsreader HOST PORT PATH SOCKETS RECORDS PAYLOADS\n");
        return 64;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]);
    int count = atoi(argv[4]);
    FILE *out = fopen(argv[5], "wb");
    payloads = fopen(argv[6], "wb");
    if (!out || !payloads) die("fopen");

    calibrate();
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur < (rlim_t)count + 64) {
        lim.rlim_cur = (rlim_t)count + 64;
        if (lim.rlim_max < lim.rlim_cur) lim.rlim_max = lim.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0) die("setrlimit");
    }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    Sock *socks = calloc((size_t)count, sizeof *socks);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) die("inet_pton");
    char request[512];
    int n = snprintf(request, sizeof request,
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                     path, host, port);
    int raw = strcmp(path, "-") == 0;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
        if (!raw) send_all(fd, (unsigned char *)request, (size_t)n);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
        socks[i] = (Sock){.fd = fd, .last_seq = -1, .upgraded = raw};
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
    }
    struct epoll_event in = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in) != 0) die("epoll_ctl stdin");

    int upgraded = 0;
    if (raw) {
        printf("ready %d\n", count);
        fflush(stdout);
    }
    char line[64];
    size_t linelen = 0;
    struct epoll_event events[1024];
    for (;;) {
        int ready = epoll_wait(ep, events, 1024, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < ready; e++) {
            uint32_t id = events[e].data.u32;
            if (id != UINT32_MAX) {
                Sock *s = &socks[id];
                if (s->closed) continue;
                if (on_readable(s, id) && ++upgraded == count) {
                    printf("ready %d\n", upgraded);
                    fflush(stdout);
                }
                continue;
            }
            ssize_t r = read(0, line + linelen, sizeof line - 1 - linelen);
            if (r <= 0) goto done;
            linelen += (size_t)r;
            char *nl;
            while ((nl = memchr(line, '\n', linelen)) != NULL) {
                *nl = '\0';
                if (strcmp(line, "quit") == 0) goto done;
                if (strcmp(line, "flush") == 0) {
                    fwrite(records, sizeof *records, nrecords, out);
                    nrecords = 0;
                    fflush(out);
                    fflush(payloads);
                    int64_t lowest = INT64_MAX, highest = -1;
                    int open = 0;
                    for (int i = 0; i < count; i++) {
                        if (socks[i].closed) continue;
                        open++;
                        if (socks[i].last_seq < lowest) lowest = socks[i].last_seq;
                        if (socks[i].last_seq > highest) highest = socks[i].last_seq;
                    }
                    if (!open) lowest = -1;
                    printf("ok %llu %lld %lld %d\n", (unsigned long long)frames,
                           (long long)lowest, (long long)highest, open);
                    fflush(stdout);
                }
                size_t used = (size_t)(nl - line) + 1;
                memmove(line, line + used, linelen - used);
                linelen -= used;
            }
        }
    }
done:;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cpu %.3f %.3f\n", ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    fflush(stdout);
    return 0;
}
