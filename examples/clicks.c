/* clicks.c — the clicks example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_clicks --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "clicks", rs_ex_clicks); }
