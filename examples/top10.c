/* top10.c — the top10 example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_top10 --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "top10", rs_ex_top10); }
