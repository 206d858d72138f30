/*
 * logdirs.c — one request/response on a plain TCP connection for the APIs
 * librdkafka 2.0.2 has no Admin call for (cli_kp_call), and partition sizes
 * for `rill topic describe` from DescribeLogDirs (key 35) on the partition's
 * leader. Requests are
 * encoded and decoded with Rill's own protocol codec (src/proto), which is a
 * library of wire formats, not broker internals.
 */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/proto.h"

static int cli_io_full(int fd, uint8_t *p, size_t n, bool wr, int64_t deadline_ms) {
    while (n) {
        int64_t left = deadline_ms - rb_mono_ms();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd pfd = {fd, (short)(wr ? POLLOUT : POLLIN), 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) return -ETIMEDOUT;
        ssize_t r = wr ? write(fd, p, n) : read(fd, p, n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) return r == 0 ? -ECONNRESET : -errno;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

int cli_kp_call(const char *host, int port, int16_t api_key, int16_t ver, const void *body, void *resp,
                rb_arena_t *ar, int timeout_ms) {
    const kp_api_desc_t *api = kp_api_find(api_key);
    if (!api) return -1;
    bool flex = kp_api_flexible(api, ver);
    int64_t deadline = rb_mono_ms() + timeout_ms;
    int rc = -1, fd = -1;
    struct addrinfo hints = {0}, *ai = NULL;
    rb_chain_t req;
    rb_chain_init(&req);
    uint8_t *resp_buf = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) goto fail;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) goto fail;
    kp_req_header_t h = {api_key, ver, 1, {"rill-cli", 8}};
    rb_buf_u32(&req.buf, 0);
    kp_req_header_encode(&h, &req);
    kp_encode(api->req, ver, flex, body, &req);
    rb_wbe32(req.buf.p, (uint32_t)(req.buf.len - 4));
    if (cli_io_full(fd, req.buf.p, req.buf.len, true, deadline)) goto fail;
    uint8_t szb[4];
    if (cli_io_full(fd, szb, 4, false, deadline)) goto fail;
    uint32_t sz = rb_be32(szb);
    if (sz < 4 || sz > (64u << 20)) goto fail;
    resp_buf = rb_arena_alloc(ar, sz); /* decoded strings point into it: it lives with the arena */
    if (!resp_buf || cli_io_full(fd, resp_buf, sz, false, deadline)) goto fail;
    rb_rd_t rd;
    rb_rd_init(&rd, resp_buf, sz);
    if (rb_rd_i32(&rd) != 1) goto fail; /* correlation id */
    if (kp_resp_header_version(api_key, ver) >= 1) { /* tagged fields of the header: skipped */
        uint32_t ntags = rb_rd_uvarint32(&rd);
        for (uint32_t i = 0; i < ntags && rb_rd_ok(&rd); i++) {
            rb_rd_uvarint32(&rd);
            rb_rd_bytes(&rd, rb_rd_uvarint32(&rd));
        }
        if (!rb_rd_ok(&rd)) goto fail;
    }
    if (kp_decode(api->resp, ver, flex, &rd, resp, ar)) goto fail;
    rc = 0;
fail:
    if (ai) freeaddrinfo(ai);
    if (fd >= 0) close(fd);
    rb_chain_free(&req);
    return rc;
}

int cli_logdirs_sizes(const char *host, int port, const char *topic, int32_t nparts, int64_t *sizes,
                      int timeout_ms) {
    const int16_t ver = 1; /* non-flexible, served by every Kafka since 2.0 */
    rb_arena_t ar;
    rb_arena_init(&ar, 64u << 20);
    kp_describe_log_dirs_req_t body;
    kp_init_defaults(&kp_describe_log_dirs_req_desc, &body);
    kp_describe_log_dirs_req_describable_log_dir_topic_t t;
    kp_init_defaults(&kp_describe_log_dirs_req_describable_log_dir_topic_desc, &t);
    t.topic.p = topic;
    t.topic.len = (int32_t)strlen(topic);
    int32_t *ids = calloc((size_t)nparts + 1, sizeof *ids);
    for (int32_t i = 0; i < nparts; i++) ids[i] = i;
    t.partitions.n = nparts;
    t.partitions.v = ids;
    body.topics.n = 1;
    body.topics.v = &t;
    kp_describe_log_dirs_resp_t resp;
    int rc = cli_kp_call(host, port, KP_API_DESCRIBE_LOG_DIRS, ver, &body, &resp, &ar, timeout_ms);
    free(ids);
    if (rc == 0) {
        for (int32_t d = 0; d < resp.results.n; d++)
            for (int32_t k = 0; k < resp.results.v[d].topics.n; k++) {
                kp_describe_log_dirs_resp_describe_log_dirs_topic_t *rt = &resp.results.v[d].topics.v[k];
                if (rt->name.len != (int32_t)strlen(topic) || memcmp(rt->name.p, topic, (size_t)rt->name.len))
                    continue;
                for (int32_t p = 0; p < rt->partitions.n; p++) {
                    int32_t idx = rt->partitions.v[p].partition_index;
                    if (idx >= 0 && idx < nparts && !rt->partitions.v[p].is_future_key)
                        sizes[idx] = (sizes[idx] < 0 ? 0 : sizes[idx]) + rt->partitions.v[p].partition_size;
                }
            }
    }
    rb_arena_free(&ar);
    return rc;
}
