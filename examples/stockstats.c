/* stockstats.c — the stockstats example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_stockstats --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "stockstats", rs_ex_stockstats); }
