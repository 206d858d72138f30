/*
 * net.c — epoll event loops: accept, Kafka framing, in-order response slots,
 * writev/sendfile of write chains, timers and cross-thread posts (net.h).
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define RN_READ_CHUNK 65536
#define RN_MAX_IOV 64

typedef struct rn_timer {
    int64_t t_deadline;
    uint64_t t_seq;
    void (*t_fn)(void *);
    void *t_arg;
    bool t_cancelled;
} rn_timer_t;

typedef struct rn_post {
    struct rn_post *next;
    void (*fn)(void *);
    void *arg;
} rn_post_t;

struct rn_loop {
    rn_server_t *lp_srv;
    int lp_index;
    int lp_epfd;
    int lp_evfd;
    pthread_t lp_thread;
    pthread_mutex_t lp_post_mu;
    rn_post_t *lp_post_head, *lp_post_tail;
    rn_timer_t **lp_heap;
    size_t lp_nheap, lp_capheap;
    uint64_t lp_timer_seq;
    rn_conn_t *lp_conns; /* doubly linked list of open connections */
    bool lp_stop;
};

struct rn_slot {
    rn_slot_t *next;
    rn_conn_t *s_conn;
    bool s_done;
    rb_chain_t s_chain;
    size_t s_el;   /* next element to send */
    size_t s_off;  /* bytes of that element already sent */
};

struct rn_conn {
    rn_conn_t *c_prev, *c_next;
    rn_loop_t *c_loop;
    int c_fd;
    uint64_t c_id;
    int c_refs;      /* 1 while open + 1 per outstanding slot */
    bool c_closed;
    bool c_reading;  /* EPOLLIN enabled */
    bool c_want_out; /* EPOLLOUT enabled */
    char c_peer[64];
    void *c_user;
    /* framing */
    uint8_t c_hdr[4];
    size_t c_hdr_got;
    uint8_t *c_frame;
    size_t c_frame_len, c_frame_got;
    /* responses, in request order */
    rn_slot_t *c_slots_head, *c_slots_tail;
    int c_inflight;    /* slots not yet completed */
    size_t c_unsent;   /* bytes of completed responses not yet written */
};

struct rn_server {
    int s_lfd;
    int s_port;
    int s_nloops;
    rn_loop_t *s_loops;
    rn_handler_t s_h;
    void *s_ud;
    bool s_stopped;
};

static _Thread_local rn_loop_t *rn_tls_loop;
static uint64_t rn_next_conn_id = 1;
static pthread_mutex_t rn_id_mu = PTHREAD_MUTEX_INITIALIZER;

rn_loop_t *rn_loop_current(void) { return rn_tls_loop; }
rn_loop_t *rn_conn_loop(rn_conn_t *c) { return c->c_loop; }
const char *rn_conn_peer(const rn_conn_t *c) { return c->c_peer; }
uint64_t rn_conn_id(const rn_conn_t *c) { return c->c_id; }
bool rn_conn_closed(const rn_conn_t *c) { return c->c_closed; }
void rn_conn_set_user(rn_conn_t *c, void *user) { c->c_user = user; }
void *rn_conn_user(const rn_conn_t *c) { return c->c_user; }
int rn_loop_index(const rn_loop_t *l) { return l->lp_index; }
int rn_server_port(const rn_server_t *s) { return s->s_port; }
int rn_server_nloops(const rn_server_t *s) { return s->s_nloops; }
rn_loop_t *rn_server_loop(rn_server_t *s, int i) { return &s->s_loops[i]; }
rn_conn_t *rn_slot_conn(rn_slot_t *s) { return s->s_conn; }

/* ---- timers: a binary min-heap on (deadline, seq) ------------------------------ */

static bool rn_timer_less(const rn_timer_t *a, const rn_timer_t *b) {
    return a->t_deadline < b->t_deadline || (a->t_deadline == b->t_deadline && a->t_seq < b->t_seq);
}

static void rn_heap_up(rn_loop_t *l, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!rn_timer_less(l->lp_heap[i], l->lp_heap[p])) break;
        rn_timer_t *t = l->lp_heap[i];
        l->lp_heap[i] = l->lp_heap[p];
        l->lp_heap[p] = t;
        i = p;
    }
}

static void rn_heap_down(rn_loop_t *l, size_t i) {
    for (;;) {
        size_t a = 2 * i + 1, b = a + 1, m = i;
        if (a < l->lp_nheap && rn_timer_less(l->lp_heap[a], l->lp_heap[m])) m = a;
        if (b < l->lp_nheap && rn_timer_less(l->lp_heap[b], l->lp_heap[m])) m = b;
        if (m == i) break;
        rn_timer_t *t = l->lp_heap[i];
        l->lp_heap[i] = l->lp_heap[m];
        l->lp_heap[m] = t;
        i = m;
    }
}

uint64_t rn_loop_timer_add(rn_loop_t *l, int64_t ms, void (*fn)(void *), void *arg) {
    rn_timer_t *t = malloc(sizeof(*t));
    if (!t) abort();
    t->t_deadline = rb_mono_ms() + (ms < 0 ? 0 : ms);
    t->t_seq = ++l->lp_timer_seq;
    t->t_fn = fn;
    t->t_arg = arg;
    t->t_cancelled = false;
    if (l->lp_nheap == l->lp_capheap) {
        size_t cap = l->lp_capheap ? l->lp_capheap * 2 : 64;
        rn_timer_t **h = realloc(l->lp_heap, cap * sizeof(*h));
        if (!h) abort();
        l->lp_heap = h;
        l->lp_capheap = cap;
    }
    l->lp_heap[l->lp_nheap++] = t;
    rn_heap_up(l, l->lp_nheap - 1);
    return (uint64_t)(uintptr_t)t;
}

/* The id is the timer itself; it must not have fired yet (callers clear their
 * id when their callback runs). */
void rn_loop_timer_cancel(rn_loop_t *l, uint64_t id) {
    (void)l;
    if (id) ((rn_timer_t *)(uintptr_t)id)->t_cancelled = true;
}

static int rn_timers_run(rn_loop_t *l) {
    int64_t now = rb_mono_ms();
    while (l->lp_nheap) {
        rn_timer_t *t = l->lp_heap[0];
        if (!t->t_cancelled && t->t_deadline > now) {
            int64_t d = t->t_deadline - now;
            return d > 1000 ? 1000 : (int)d;
        }
        l->lp_heap[0] = l->lp_heap[--l->lp_nheap];
        if (l->lp_nheap) rn_heap_down(l, 0);
        if (!t->t_cancelled) t->t_fn(t->t_arg);
        free(t);
    }
    return 1000;
}

/* ---- posts ---------------------------------------------------------------------- */

void rn_loop_post(rn_loop_t *l, void (*fn)(void *), void *arg) {
    rn_post_t *p = malloc(sizeof(*p));
    if (!p) abort();
    p->next = NULL;
    p->fn = fn;
    p->arg = arg;
    pthread_mutex_lock(&l->lp_post_mu);
    bool was_empty = l->lp_post_head == NULL;
    if (l->lp_post_tail) l->lp_post_tail->next = p;
    else l->lp_post_head = p;
    l->lp_post_tail = p;
    pthread_mutex_unlock(&l->lp_post_mu);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(l->lp_evfd, &one, 8);
        (void)w;
    }
}

static void rn_posts_run(rn_loop_t *l) {
    uint64_t v;
    ssize_t r = read(l->lp_evfd, &v, 8);
    (void)r;
    pthread_mutex_lock(&l->lp_post_mu);
    rn_post_t *p = l->lp_post_head;
    l->lp_post_head = l->lp_post_tail = NULL;
    pthread_mutex_unlock(&l->lp_post_mu);
    while (p) {
        rn_post_t *next = p->next;
        p->fn(p->arg);
        free(p);
        p = next;
    }
}

/* ---- connections ------------------------------------------------------------------ */

static void rn_conn_update_events(rn_conn_t *c) {
    if (c->c_closed) return;
    const rn_handler_t *h = &c->c_loop->lp_srv->s_h;
    bool want_in = c->c_inflight < h->max_inflight && c->c_unsent < h->max_unsent;
    bool want_out = c->c_want_out;
    struct epoll_event ev = {0};
    ev.events = (want_in ? EPOLLIN : 0) | (want_out ? EPOLLOUT : 0) | EPOLLRDHUP;
    ev.data.ptr = c;
    if (want_in != c->c_reading || true) {
        epoll_ctl(c->c_loop->lp_epfd, EPOLL_CTL_MOD, c->c_fd, &ev);
        c->c_reading = want_in;
    }
}

static void rn_slot_free(rn_slot_t *s) {
    rb_chain_free(&s->s_chain);
    free(s);
}

static void rn_conn_unref(rn_conn_t *c) {
    if (--c->c_refs > 0) return;
    rn_slot_t *s = c->c_slots_head;
    while (s) {
        rn_slot_t *n = s->next;
        rn_slot_free(s);
        s = n;
    }
    free(c->c_frame);
    free(c);
}

static void rn_conn_do_close(rn_conn_t *c) {
    if (c->c_closed) return;
    c->c_closed = true;
    rn_loop_t *l = c->c_loop;
    epoll_ctl(l->lp_epfd, EPOLL_CTL_DEL, c->c_fd, NULL);
    close(c->c_fd);
    c->c_fd = -1;
    if (c->c_prev) c->c_prev->c_next = c->c_next;
    else l->lp_conns = c->c_next;
    if (c->c_next) c->c_next->c_prev = c->c_prev;
    /* drop completed-but-unsent responses; incomplete slots stay until completed */
    rn_slot_t **pp = &c->c_slots_head, *last = NULL;
    while (*pp) {
        rn_slot_t *s = *pp;
        if (s->s_done) {
            *pp = s->next;
            rn_slot_free(s);
            c->c_refs--; /* the slot's reference */
        } else {
            last = s;
            pp = &s->next;
        }
    }
    c->c_slots_tail = last;
    if (l->lp_srv->s_h.on_close) l->lp_srv->s_h.on_close(c, l->lp_srv->s_ud);
    rn_conn_unref(c);
}

void rn_conn_close(rn_conn_t *c, const char *reason) {
    if (c->c_closed) return;
    rb_info("closing connection %s (id %llu): %s", c->c_peer, (unsigned long long)c->c_id, reason);
    rn_conn_do_close(c);
}

rn_slot_t *rn_conn_slot(rn_conn_t *c) {
    rn_slot_t *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->s_conn = c;
    rb_chain_init(&s->s_chain);
    c->c_refs++;
    c->c_inflight++;
    if (c->c_slots_tail) c->c_slots_tail->next = s;
    else c->c_slots_head = s;
    c->c_slots_tail = s;
    return s;
}

static void rn_conn_flush(rn_conn_t *c);

static void rn_slot_finish(rn_slot_t *s) {
    rn_conn_t *c = s->s_conn;
    s->s_done = true;
    c->c_inflight--;
    if (c->c_closed) {
        /* unlink and free: nobody will send it */
        rn_slot_t **pp = &c->c_slots_head, *prev = NULL;
        while (*pp && *pp != s) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        if (*pp) {
            *pp = s->next;
            if (c->c_slots_tail == s) c->c_slots_tail = prev;
        }
        rn_slot_free(s);
        rn_conn_unref(c);
        return;
    }
    c->c_unsent += s->s_chain.total;
    /* a failed write closes c and frees this slot, and may drop the last
     * reference: keep c alive across the flush, as the event loop does */
    c->c_refs++;
    rn_conn_flush(c);
    if (!c->c_closed) rn_conn_update_events(c);
    rn_conn_unref(c);
}

void rn_slot_complete(rn_slot_t *s, rb_chain_t *resp) {
    s->s_chain = *resp;
    rb_chain_finish(&s->s_chain);
    rb_chain_init(resp);
    rn_slot_finish(s);
}

void rn_slot_complete_empty(rn_slot_t *s) { rn_slot_finish(s); }

/* Writes as much of the completed head-of-line responses as the socket takes. */
static void rn_conn_flush(rn_conn_t *c) {
    while (!c->c_closed && c->c_slots_head && c->c_slots_head->s_done) {
        rn_slot_t *s = c->c_slots_head;
        if (s->s_el >= s->s_chain.nels) {
            c->c_slots_head = s->next;
            if (!c->c_slots_head) c->c_slots_tail = NULL;
            rn_slot_free(s);
            c->c_refs--; /* never the last ref: the open conn holds one */
            continue;
        }
        rb_chain_el_t *el = &s->s_chain.els[s->s_el];
        ssize_t w;
        if (el->is_file) {
            off_t off = (off_t)(el->off + s->s_off);
            size_t want = el->len - s->s_off;
            if (want == 0) {
                s->s_el++;
                s->s_off = 0;
                continue;
            }
            w = sendfile(c->c_fd, el->fd, &off, want);
            if (w == 0) { /* file shorter than promised: cannot complete the frame */
                rn_conn_close(c, "sendfile hit end of file");
                return;
            }
        } else {
            /* gather memory elements of this and following completed slots */
            struct iovec iov[RN_MAX_IOV];
            int n = 0;
            for (rn_slot_t *t = s; t && t->s_done && n < RN_MAX_IOV; t = t->next) {
                size_t ei = t == s ? t->s_el : 0;
                size_t eo = t == s ? t->s_off : 0;
                bool stop = false;
                for (; ei < t->s_chain.nels && n < RN_MAX_IOV; ei++, eo = 0) {
                    rb_chain_el_t *e = &t->s_chain.els[ei];
                    if (e->is_file) { stop = true; break; }
                    iov[n].iov_base = t->s_chain.buf.p + e->off + eo;
                    iov[n].iov_len = e->len - eo;
                    n++;
                }
                if (stop) break;
            }
            w = writev(c->c_fd, iov, n);
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->c_want_out) {
                    c->c_want_out = true;
                    rn_conn_update_events(c);
                }
                return;
            }
            if (errno == EINTR) continue;
            char why[128];
            snprintf(why, sizeof(why), "write failed: %s", strerror(errno));
            rn_conn_close(c, why);
            return;
        }
        /* advance over w bytes */
        size_t left = (size_t)w;
        c->c_unsent -= left < c->c_unsent ? left : c->c_unsent;
        while (left && c->c_slots_head && c->c_slots_head->s_done) {
            rn_slot_t *t = c->c_slots_head;
            while (left && t->s_el < t->s_chain.nels) {
                rb_chain_el_t *e = &t->s_chain.els[t->s_el];
                size_t rem = e->len - t->s_off;
                if (left >= rem) {
                    left -= rem;
                    t->s_el++;
                    t->s_off = 0;
                } else {
                    t->s_off += left;
                    left = 0;
                }
            }
            if (t->s_el >= t->s_chain.nels) {
                c->c_slots_head = t->next;
                if (!c->c_slots_head) c->c_slots_tail = NULL;
                rn_slot_free(t);
                c->c_refs--;
            } else {
                break;
            }
        }
    }
    if (!c->c_closed && c->c_want_out) {
        c->c_want_out = false;
        rn_conn_update_events(c);
    }
}

static void rn_conn_read(rn_conn_t *c) {
    const rn_handler_t *h = &c->c_loop->lp_srv->s_h;
    uint8_t buf[RN_READ_CHUNK];
    for (int rounds = 0; rounds < 16 && !c->c_closed; rounds++) {
        if (c->c_inflight >= h->max_inflight || c->c_unsent >= h->max_unsent) break;
        /* a large frame in progress is read straight into its own buffer */
        if (c->c_frame && c->c_frame_len - c->c_frame_got >= RN_READ_CHUNK) {
            ssize_t d = read(c->c_fd, c->c_frame + c->c_frame_got, c->c_frame_len - c->c_frame_got);
            if (d > 0) {
                c->c_frame_got += (size_t)d;
                if (c->c_frame_got == c->c_frame_len) {
                    uint8_t *f = c->c_frame;
                    c->c_frame = NULL;
                    c->c_refs++;
                    h->on_frame(c, f, c->c_frame_len, c->c_loop->lp_srv->s_ud);
                    bool closed = c->c_closed;
                    rn_conn_unref(c);
                    if (closed) return;
                }
                continue;
            }
            if (d == 0) {
                rn_conn_do_close(c);
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            char why[128];
            snprintf(why, sizeof(why), "read failed: %s", strerror(errno));
            rn_conn_close(c, why);
            return;
        }
        ssize_t r = read(c->c_fd, buf, sizeof(buf));
        if (r == 0) {
            rn_conn_do_close(c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            char why[128];
            snprintf(why, sizeof(why), "read failed: %s", strerror(errno));
            rn_conn_close(c, why);
            return;
        }
        size_t pos = 0, n = (size_t)r;
        while (pos < n && !c->c_closed) {
            if (!c->c_frame) {
                size_t take = RB_MIN(4 - c->c_hdr_got, n - pos);
                memcpy(c->c_hdr + c->c_hdr_got, buf + pos, take);
                c->c_hdr_got += take;
                pos += take;
                if (c->c_hdr_got < 4) break;
                int32_t size = (int32_t)rb_be32(c->c_hdr);
                c->c_hdr_got = 0;
                if (size < 8 || (size_t)size > h->max_frame) {
                    char why[160];
                    snprintf(why, sizeof(why),
                             "request frame size %d outside [8, %zu] (socket.request.max.bytes)", size,
                             h->max_frame);
                    rn_conn_close(c, why);
                    return;
                }
                c->c_frame = malloc((size_t)size);
                if (!c->c_frame) {
                    rn_conn_close(c, "out of memory for request frame");
                    return;
                }
                c->c_frame_len = (size_t)size;
                c->c_frame_got = 0;
            }
            size_t take = RB_MIN(c->c_frame_len - c->c_frame_got, n - pos);
            memcpy(c->c_frame + c->c_frame_got, buf + pos, take);
            c->c_frame_got += take;
            pos += take;
            if (c->c_frame_got == c->c_frame_len) {
                uint8_t *f = c->c_frame;
                size_t len = c->c_frame_len;
                c->c_frame = NULL;
                c->c_refs++; /* keep c alive across the callback */
                h->on_frame(c, f, len, c->c_loop->lp_srv->s_ud);
                bool closed = c->c_closed;
                rn_conn_unref(c);
                if (closed) return;
            }
        }
        if ((size_t)r < sizeof(buf)) break;
    }
    if (!c->c_closed) rn_conn_update_events(c);
}

static void rn_accept(rn_loop_t *l) {
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(l->lp_srv->s_lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                rb_warn("accept failed: %s", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rn_conn_t *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            return;
        }
        c->c_loop = l;
        c->c_fd = fd;
        c->c_refs = 1;
        pthread_mutex_lock(&rn_id_mu);
        c->c_id = rn_next_conn_id++;
        pthread_mutex_unlock(&rn_id_mu);
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
        snprintf(c->c_peer, sizeof(c->c_peer), "%s:%u", ip, ntohs(sa.sin_port));
        c->c_next = l->lp_conns;
        if (l->lp_conns) l->lp_conns->c_prev = c;
        l->lp_conns = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        c->c_reading = true;
        if (epoll_ctl(l->lp_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            rn_conn_close(c, "epoll_ctl failed");
            continue;
        }
        rb_debug("accepted %s (id %llu) on loop %d", c->c_peer, (unsigned long long)c->c_id, l->lp_index);
    }
}

static void *rn_loop_main(void *arg) {
    rn_loop_t *l = arg;
    rn_tls_loop = l;
    struct epoll_event evs[128];
    while (!l->lp_stop) {
        int timeout = rn_timers_run(l);
        int n = epoll_wait(l->lp_epfd, evs, 128, timeout);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == (void *)l->lp_srv) {
                rn_accept(l);
            } else if (p == (void *)l) {
                rn_posts_run(l);
            } else {
                rn_conn_t *c = p;
                if (c->c_closed) continue;
                c->c_refs++;
                if (evs[i].events & EPOLLOUT) rn_conn_flush(c);
                if (!c->c_closed && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
                    rn_conn_read(c);
                rn_conn_unref(c);
            }
        }
    }
    rn_posts_run(l);
    while (l->lp_conns) rn_conn_do_close(l->lp_conns);
    /* fire every pending timer now so its owner can finish (e.g. a parked
     * fetch answers its closed connection and frees itself) */
    while (l->lp_nheap) {
        rn_timer_t *t = l->lp_heap[0];
        l->lp_heap[0] = l->lp_heap[--l->lp_nheap];
        if (l->lp_nheap) rn_heap_down(l, 0);
        if (!t->t_cancelled) t->t_fn(t->t_arg);
        free(t);
    }
    rn_posts_run(l);
    return NULL;
}

int rn_server_start(const char *host, int port, int nloops, const rn_handler_t *h, void *ud, rn_server_t **out) {
    rn_server_t *s = calloc(1, sizeof(*s));
    if (!s) return RB_ERR_NOMEM;
    s->s_h = *h;
    if (s->s_h.max_inflight <= 0) s->s_h.max_inflight = 128;
    if (!s->s_h.max_unsent) s->s_h.max_unsent = 64u << 20;
    s->s_ud = ud;
    s->s_nloops = nloops < 1 ? 1 : nloops;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail_errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        rb_error("listener host %s is not an IPv4 address", host);
        close(fd);
        free(s);
        return RB_ERR_INVALID_ARG;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        rb_error("cannot listen on %s:%d: %s", host, port, strerror(e));
        close(fd);
        free(s);
        return RB_ERR_IO;
    }
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    s->s_port = ntohs(sa.sin_port);
    s->s_lfd = fd;
    s->s_loops = calloc((size_t)s->s_nloops, sizeof(rn_loop_t));
    for (int i = 0; i < s->s_nloops; i++) {
        rn_loop_t *l = &s->s_loops[i];
        l->lp_srv = s;
        l->lp_index = i;
        l->lp_epfd = epoll_create1(EPOLL_CLOEXEC);
        l->lp_evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        pthread_mutex_init(&l->lp_post_mu, NULL);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = s};
        epoll_ctl(l->lp_epfd, EPOLL_CTL_ADD, fd, &ev);
        struct epoll_event ev2 = {.events = EPOLLIN, .data.ptr = l};
        epoll_ctl(l->lp_epfd, EPOLL_CTL_ADD, l->lp_evfd, &ev2);
    }
    for (int i = 0; i < s->s_nloops; i++) pthread_create(&s->s_loops[i].lp_thread, NULL, rn_loop_main, &s->s_loops[i]);
    *out = s;
    return 0;
fail_errno:
    rb_error("socket: %s", strerror(errno));
    free(s);
    return RB_ERR_IO;
}

static void rn_loop_stop_cb(void *arg) { ((rn_loop_t *)arg)->lp_stop = true; }

void rn_server_stop(rn_server_t *s) {
    if (!s || s->s_stopped) return;
    for (int i = 0; i < s->s_nloops; i++) rn_loop_post(&s->s_loops[i], rn_loop_stop_cb, &s->s_loops[i]);
    for (int i = 0; i < s->s_nloops; i++) pthread_join(s->s_loops[i].lp_thread, NULL);
    close(s->s_lfd);
    s->s_stopped = true;
}

void rn_server_free(rn_server_t *s) {
    if (!s) return;
    rn_server_stop(s);
    for (int i = 0; i < s->s_nloops; i++) {
        rn_loop_t *l = &s->s_loops[i];
        /* posts that arrived after the loop stopped (late completions) run here,
         * on the caller's thread: they find their connections closed */
        rn_tls_loop = l;
        rn_posts_run(l);
        rn_tls_loop = NULL;
        for (size_t k = 0; k < l->lp_nheap; k++) free(l->lp_heap[k]);
        free(l->lp_heap);
        close(l->lp_epfd);
        close(l->lp_evfd);
        pthread_mutex_destroy(&l->lp_post_mu);
    }
    free(s->s_loops);
    free(s);
}
