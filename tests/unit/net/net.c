/* net.c (test) — the event loops on a real loopback socket: frames are
 * delivered whole however the bytes arrive; a frame size outside [8, max]
 * closes the connection before any allocation; responses leave in request
 * order even when completed out of order (slots); posts from other threads
 * run on the loop; timers fire in deadline order and cancelled ones never. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net.h"

/* The handler answers frame "N:<text>" after N ms (0 = at once) with the
 * text, so tests can complete slots out of order. */
typedef struct {
    rn_slot_t *slot;
    char text[64];
} delayed_t;

static void answer(rn_slot_t *s, const char *text) {
    rb_chain_t c;
    rb_chain_init(&c);
    rb_buf_u32(&c.buf, (uint32_t)strlen(text));
    rb_buf_put(&c.buf, text, strlen(text));
    rn_slot_complete(s, &c);
}

static void delayed_cb(void *arg) {
    delayed_t *d = arg;
    answer(d->slot, d->text);
    free(d);
}

static atomic_int g_frames, g_closes;

static void on_frame(rn_conn_t *c, uint8_t *frame, size_t len, void *ud) {
    (void)ud;
    atomic_fetch_add(&g_frames, 1);
    rn_slot_t *s = rn_conn_slot(c);
    int ms = atoi((char *)frame);
    const char *colon = memchr(frame, ':', len);
    delayed_t *d = calloc(1, sizeof(*d));
    d->slot = s;
    if (colon) snprintf(d->text, sizeof(d->text), "%.*s", (int)(len - (size_t)(colon + 1 - (char *)frame)), colon + 1);
    free(frame);
    if (ms == 0) delayed_cb(d);
    else rn_loop_timer_add(rn_conn_loop(c), ms, delayed_cb, d);
}

static void on_close(rn_conn_t *c, void *ud) {
    (void)c;
    (void)ud;
    atomic_fetch_add(&g_closes, 1);
}

static rn_server_t *start(void) {
    rn_handler_t h = {on_frame, on_close, 1024, 16, 1 << 20};
    rn_server_t *s = NULL;
    assert_int_equal(rn_server_start("127.0.0.1", 0, 2, &h, NULL, &s), 0);
    return s;
}

static int dial(rn_server_t *s) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rn_server_port(s))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static void send_frame(int fd, const char *body, bool byte_by_byte) {
    uint8_t buf[256];
    size_t n = strlen(body);
    rb_wbe32(buf, (uint32_t)n);
    memcpy(buf + 4, body, n);
    if (!byte_by_byte) {
        assert_int_equal(write(fd, buf, n + 4), (ssize_t)(n + 4));
        return;
    }
    for (size_t i = 0; i < n + 4; i++) {
        assert_int_equal(write(fd, buf + i, 1), 1);
        usleep(200);
    }
}

static void read_answer(int fd, char *out, size_t cap) {
    uint8_t h[4];
    size_t got = 0;
    while (got < 4) {
        ssize_t r = read(fd, h + got, 4 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    uint32_t n = rb_be32(h);
    assert_true(n < cap);
    got = 0;
    while (got < n) {
        ssize_t r = read(fd, out + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    out[n] = 0;
}

static void test_in_order_responses(void **state) {
    (void)state;
    rn_server_t *s = start();
    int fd = dial(s);
    /* slower requests first: answers must still come back in request order */
    send_frame(fd, "300:first--------", false);
    send_frame(fd, "100:second-------", false);
    send_frame(fd, "0:third----------", true); /* split across many reads */
    char buf[128];
    read_answer(fd, buf, sizeof(buf));
    assert_string_equal(buf, "first--------");
    read_answer(fd, buf, sizeof(buf));
    assert_string_equal(buf, "second-------");
    read_answer(fd, buf, sizeof(buf));
    assert_string_equal(buf, "third----------");
    close(fd);
    rn_server_stop(s);
    rn_server_free(s);
}

static void test_frame_limits_close(void **state) {
    (void)state;
    rn_server_t *s = start();
    int32_t sizes[] = {2000 /* > max 1024 */, -1, 0, 7};
    for (size_t i = 0; i < RB_ARRAY_LEN(sizes); i++) {
        int fd = dial(s);
        int before = atomic_load(&g_closes);
        uint8_t h[4];
        rb_wbe32(h, (uint32_t)sizes[i]);
        assert_int_equal(write(fd, h, 4), 4);
        char c;
        assert_int_equal(read(fd, &c, 1), 0); /* closed by the server */
        for (int k = 0; k < 200 && atomic_load(&g_closes) == before; k++) usleep(5000);
        assert_true(atomic_load(&g_closes) > before);
        close(fd);
    }
    /* and a healthy connection is unaffected */
    int fd = dial(s);
    send_frame(fd, "0:still-fine", false);
    char buf[64];
    read_answer(fd, buf, sizeof(buf));
    assert_string_equal(buf, "still-fine");
    close(fd);
    rn_server_stop(s);
    rn_server_free(s);
}

static atomic_int g_posted;
static int g_order[3], g_norder;

static void post_cb(void *arg) {
    assert_non_null(rn_loop_current());
    atomic_fetch_add(&g_posted, (int)(intptr_t)arg);
}

static void *poster(void *arg) {
    rn_loop_t *l = arg;
    for (int i = 0; i < 1000; i++) rn_loop_post(l, post_cb, (void *)(intptr_t)1);
    return NULL;
}

static void timer_cb(void *arg) { g_order[g_norder++] = (int)(intptr_t)arg; }

typedef struct {
    rn_loop_t *l;
    uint64_t cancel_me;
} timers_ctx_t;

static void add_timers(void *arg) {
    timers_ctx_t *t = arg;
    rn_loop_timer_add(t->l, 60, timer_cb, (void *)(intptr_t)3);
    rn_loop_timer_add(t->l, 20, timer_cb, (void *)(intptr_t)1);
    uint64_t id = rn_loop_timer_add(t->l, 40, timer_cb, (void *)(intptr_t)99);
    rn_loop_timer_add(t->l, 40, timer_cb, (void *)(intptr_t)2);
    rn_loop_timer_cancel(t->l, id);
}

static void test_posts_and_timers(void **state) {
    (void)state;
    rn_server_t *s = start();
    rn_loop_t *l = rn_server_loop(s, 1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, poster, l);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int k = 0; k < 400 && atomic_load(&g_posted) < 4000; k++) usleep(5000);
    assert_int_equal(atomic_load(&g_posted), 4000);
    timers_ctx_t t = {l, 0};
    rn_loop_post(l, add_timers, &t);
    for (int k = 0; k < 400 && g_norder < 3; k++) usleep(5000);
    usleep(50000);
    assert_int_equal(g_norder, 3);
    assert_int_equal(g_order[0], 1);
    assert_int_equal(g_order[1], 2);
    assert_int_equal(g_order[2], 3);
    rn_server_stop(s);
    rn_server_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_responses),
        cmocka_unit_test(test_frame_limits_close),
        cmocka_unit_test(test_posts_and_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
