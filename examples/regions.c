/* regions.c — the regions example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_regions --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "regions", rs_ex_regions); }
