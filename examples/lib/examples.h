/*
 * examples.h — the example topologies (built into rill_examples so the
 * programs in examples/ and the tests share one definition of each).
 *
 *  wordcount   lines -> lowercase words, "the" dropped, count per word ->
 *              wordcount-output (value int64 big-endian). From "Kafka: The
 *              Definitive Guide", ch. 14.
 *  stockstats  trades keyed by ticker (value: ask price, double big-endian)
 *              -> hopping windows of 5 s advancing by 1 s -> trade count,
 *              minimum and average ask price per window -> stockstats-output
 *              (key: windowed key; value: rs_ex_stats, see below). Same book.
 *  top10       transactions keyed by user (value: amount, double) -> sum per
 *              user over 10-minute windows sliding every second (final per
 *              window) -> the 10 largest per window -> top10-output (key:
 *              window start int64; value text "user=amount,..." amounts
 *              with 2 decimals, largest first, ties by user name).
 *  alerts      requests keyed by client (value "ACCEPTED" / "REJECTED") ->
 *              a count window over the last 3 requests -> when all 3 were
 *              rejected, an alert -> alerts-output (value: text).
 *  clicks      clicks-web and clicks-app (co-partitioned, keyed by user)
 *              read by one source -> count per user -> clicks-per-user
 *              (int64): one task must see partition p of both topics.
 *  routes      every topic matching routes-in-[a-z]+$ (a pattern source)
 *              -> value prefixed "<source topic>:" -> routes-out, in the
 *              partition a user partitioner picks: the key's decimal value
 *              mod the partition count (a key that is not a number: no
 *              partition, the record is dropped).
 *  regions     regions-users, a table user -> region (a null value deletes
 *              the user) -> group_by region -> users per region (count,
 *              int64; moving a user subtracts from the old region) ->
 *              regions-output.
 */
#ifndef RILL_EXAMPLES_H
#define RILL_EXAMPLES_H

#include "rill/streams.h"

/* stockstats output value: three big-endian 8-byte fields */
typedef struct rs_ex_stats {
    int64_t count;
    double min_ask, avg_ask;
} rs_ex_stats;
int rs_ex_stats_decode(rs_bytes b, rs_ex_stats *out);

/* each adds its topology to b; store names as given in the file */
void rs_ex_wordcount(rs_builder *b, const rs_materialized *m);
void rs_ex_stockstats(rs_builder *b, const rs_materialized *m);
void rs_ex_top10(rs_builder *b, const rs_materialized *m);
void rs_ex_alerts(rs_builder *b, const rs_materialized *m);
void rs_ex_clicks(rs_builder *b, const rs_materialized *m);
void rs_ex_routes(rs_builder *b, const rs_materialized *m);
void rs_ex_regions(rs_builder *b, const rs_materialized *m);

/* the example programs' main: runs topo against --bootstrap until a signal */
int rs_ex_run(int argc, char **argv, const char *name, void (*topo)(rs_builder *, const rs_materialized *));

#endif
