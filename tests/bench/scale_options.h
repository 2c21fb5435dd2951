/*
 * runway-bench-scale's options: which configurations a run measures and for
 * how long (see bench_scale.c's head for what each means).
 */
#ifndef RUNWAY_BENCH_SCALE_OPTIONS_H
#define RUNWAY_BENCH_SCALE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>

#define MAX_LIST 16

struct scale_options {
  bool quick, table, search;
  unsigned slots[MAX_LIST], n_slots;
  bool topo[2];
  double seconds, warmup;
  unsigned max_clients;
  double latency_ms;
  unsigned period;
  unsigned search_slots[MAX_LIST], n_search_slots;
  double search_seconds;
  unsigned search_step, search_max;
  unsigned checks[MAX_LIST][2], n_checks;
  unsigned run;
};

/*
 * Fills o with the defaults, then argv. 0: run; 1: --help was printed, exit
 * 0; 2: a usage error was printed, exit 2.
 */
int scale_options_parse(struct scale_options *o, int argc, char **argv);
void scale_options_usage(FILE *f);

#endif
