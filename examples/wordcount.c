/* wordcount.c — the wordcount example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_wordcount --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "wordcount", rs_ex_wordcount); }
