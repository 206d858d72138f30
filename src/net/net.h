/*
 * net — event loops, listeners, Kafka framing, ordered responses, write chains
 * that leave by writev and sendfile, timers, and cross-thread posts.
 *
 * Owns: N event-loop threads (epoll), each owning the connections it accepted
 * end to end; one listening socket shared by all loops (EPOLLEXCLUSIVE).
 *
 * Invariants:
 *  1. A frame is `int32 size` + `size` bytes. A size < 8 (too small for a
 *     request header) or > max_frame closes the connection with a log line
 *     before anything is allocated for it.
 *  2. Responses leave a connection in the order its requests arrived (Kafka
 *     clients pipeline and match by order): each request reserves a slot with
 *     rn_conn_slot; a slot completed out of order waits for those before it.
 *  3. A connection stops reading while it has too many incomplete slots or
 *     too many unsent bytes (backpressure), and resumes when they drain.
 *  4. A connection object lives until it is closed and every slot reserved on
 *     it has been completed or abandoned (slots hold references); completing a
 *     slot of a closed connection frees the response quietly.
 *  5. Every accepted socket has TCP_NODELAY set.
 *
 * Threads: rn_conn_*, rn_slot_* and rn_loop_timer_* must be called on the
 * connection's / loop's own thread. rn_loop_post may be called from any
 * thread; the function runs on the loop thread.
 */
#ifndef RILL_NET_H
#define RILL_NET_H

#include "base/base.h"

typedef struct rn_loop rn_loop_t;
typedef struct rn_conn rn_conn_t;
typedef struct rn_slot rn_slot_t;
typedef struct rn_server rn_server_t;

typedef struct {
    /* A complete frame arrived (size prefix stripped). The callee owns
     * `frame` (malloc'd) and must free() it. Called on the conn's loop. */
    void (*on_frame)(rn_conn_t *c, uint8_t *frame, size_t len, void *ud);
    /* The connection closed (peer, error or rn_conn_close). Called once. */
    void (*on_close)(rn_conn_t *c, void *ud);
    size_t max_frame;        /* socket.request.max.bytes */
    int max_inflight;        /* incomplete slots before reading pauses */
    size_t max_unsent;       /* unsent response bytes before reading pauses */
} rn_handler_t;

/* Binds host:port (port 0 picks a free one), starts nloops threads. */
int rn_server_start(const char *host, int port, int nloops, const rn_handler_t *h, void *ud, rn_server_t **out);
int rn_server_port(const rn_server_t *s);
int rn_server_nloops(const rn_server_t *s);
rn_loop_t *rn_server_loop(rn_server_t *s, int i);
/* Stops accepting, closes every connection, joins the threads. Posts that
 * arrive afterwards are queued, not run. */
void rn_server_stop(rn_server_t *s);
/* Runs any queued posts on the calling thread (their connections are closed),
 * then frees the server. Call after everything that may post has stopped. */
void rn_server_free(rn_server_t *s);

rn_loop_t *rn_conn_loop(rn_conn_t *c);
const char *rn_conn_peer(const rn_conn_t *c); /* "127.0.0.1:54321" */
uint64_t rn_conn_id(const rn_conn_t *c);
bool rn_conn_closed(const rn_conn_t *c);
/* Closes after flushing nothing more; logs `reason` at INFO with the peer. */
void rn_conn_close(rn_conn_t *c, const char *reason);
void rn_conn_set_user(rn_conn_t *c, void *user);
void *rn_conn_user(const rn_conn_t *c);

/* Reserves the next response slot (holds a reference on the conn). */
rn_slot_t *rn_conn_slot(rn_conn_t *c);
rn_conn_t *rn_slot_conn(rn_slot_t *s);
/* Completes a slot with a response: takes over the chain's contents (the
 * caller's chain is left empty-initialised). The chain must already hold the
 * 4-byte size prefix. */
void rn_slot_complete(rn_slot_t *s, rb_chain_t *resp);
/* Completes a slot with no response (acks=0 produce). */
void rn_slot_complete_empty(rn_slot_t *s);

/* Runs fn(arg) on the loop's thread soon. Thread-safe. */
void rn_loop_post(rn_loop_t *l, void (*fn)(void *arg), void *arg);
int rn_loop_index(const rn_loop_t *l);
/* One-shot timer after `ms`; returns an id for cancel. Loop thread only. */
uint64_t rn_loop_timer_add(rn_loop_t *l, int64_t ms, void (*fn)(void *arg), void *arg);
void rn_loop_timer_cancel(rn_loop_t *l, uint64_t id);
/* The loop the calling thread runs, or NULL. */
rn_loop_t *rn_loop_current(void);

#endif
