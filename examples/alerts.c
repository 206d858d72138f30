/* alerts.c — the alerts example (see examples/lib/examples.h) as a program
 * running against a Kafka cluster: example_alerts --bootstrap HOST:PORT ... */
#include "examples.h"

int main(int argc, char **argv) { return rs_ex_run(argc, argv, "alerts", rs_ex_alerts); }
