/* routes.c — the routes example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_routes --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "routes", rs_ex_routes); }
