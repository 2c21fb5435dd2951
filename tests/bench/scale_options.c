/* runway-bench-scale's command line. */
#include "scale_options.h"

#include <stdlib.h>
#include <string.h>

#include "scale_graph.h"

void scale_options_usage(FILE *f) {
  fprintf(f,
          "usage: runway-bench-scale [--quick] [--table] [--search] [--check-latency N:L,...]\n"
          "         [--slots 1,8,32,64,128] [--topology chained,parallel] [--seconds S]\n"
          "         [--warmup S] [--max-clients N] [--latency-ms X] [--period FRAMES]\n"
          "         [--search-slots 1,4,16] [--search-seconds S] [--search-step F]\n"
          "         [--search-max F] [--run N]\n"
          "  --table           idle server, plain clients and runwayd for each N of --slots\n"
          "                    (the default when neither --search nor --check-latency is given)\n"
          "  --search          the smallest L without an underrun for each N of --search-slots\n"
          "  --check-latency   N chained slots at L frames, for --search-seconds each\n"
          "  --seconds         measuring time per configuration (default 10)\n"
          "  --warmup          settling time before each (default 2)\n"
          "  --max-clients     plain reference clients at most (default 128)\n"
          "  --latency-ms      L of the table's slots (default: runwayd's, 50 ms)\n"
          "  --search-seconds  time per latency probe (default 60)\n"
          "  --search-step     L's step in frames (default 32); --search-max its top (1024)\n"
          "  --run             a number to label the lines with (default 0)\n"
          "  --quick           a smoke run of everything: 1 and 2 slots, 0.8 s windows\n");
}

/* "1,8,32" into list; false on anything else. */
static bool parse_list(const char *s, unsigned *list, unsigned *n) {
  *n = 0;
  while (*s != '\0') {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || v < 1 || v > GRAPH_MAX_UNITS || *n == MAX_LIST)
      return false;
    list[(*n)++] = (unsigned)v;
    s = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != '\0')
      return false;
  }
  return *n > 0;
}

static bool parse_checks(struct scale_options *o, const char *s) {
  o->n_checks = 0;
  while (*s != '\0') {
    unsigned n, l;
    int used = 0;
    if (sscanf(s, "%u:%u%n", &n, &l, &used) != 2 || n < 1 || n > GRAPH_MAX_UNITS || l < 1 ||
        o->n_checks == MAX_LIST)
      return false;
    o->checks[o->n_checks][0] = n;
    o->checks[o->n_checks][1] = l;
    o->n_checks++;
    s += used;
    if (*s == ',')
      s++;
    else if (*s != '\0')
      return false;
  }
  return o->n_checks > 0;
}

static bool parse_seconds(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v > 0) || v > 3600)
    return false;
  *out = v;
  return true;
}

static bool parse_uint(const char *s, unsigned *out, unsigned lo, unsigned hi) {
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || *end != '\0' || v < lo || v > hi)
    return false;
  *out = (unsigned)v;
  return true;
}

int scale_options_parse(struct scale_options *o, int argc, char **argv) {
  *o = (struct scale_options){
      .slots = {1, 8, 32, 64, 128},
      .n_slots = 5,
      .topo = {true, true},
      .seconds = 10,
      .warmup = 2,
      .max_clients = 128,
      .period = 128,
      .search_slots = {1, 4, 16},
      .n_search_slots = 3,
      .search_seconds = 60,
      .search_step = 32,
      .search_max = 1024,
  };
  bool table = false, checks = false;
  for (int i = 1; i < argc; i++) {
    const char *opt = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : "";
    bool ok = true, takes = true;
    if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
      scale_options_usage(stdout);
      return 1;
    } else if (strcmp(opt, "--quick") == 0) {
      o->quick = true;
      takes = false;
    } else if (strcmp(opt, "--table") == 0) {
      table = true;
      takes = false;
    } else if (strcmp(opt, "--search") == 0) {
      o->search = true;
      takes = false;
    } else if (strcmp(opt, "--check-latency") == 0) {
      ok = checks = parse_checks(o, val);
    } else if (strcmp(opt, "--slots") == 0) {
      ok = parse_list(val, o->slots, &o->n_slots);
    } else if (strcmp(opt, "--search-slots") == 0) {
      ok = parse_list(val, o->search_slots, &o->n_search_slots);
    } else if (strcmp(opt, "--topology") == 0) {
      o->topo[GRAPH_CHAINED] = strstr(val, "chained") != NULL;
      o->topo[GRAPH_PARALLEL] = strstr(val, "parallel") != NULL;
      ok = o->topo[0] || o->topo[1];
    } else if (strcmp(opt, "--seconds") == 0) {
      ok = parse_seconds(val, &o->seconds);
    } else if (strcmp(opt, "--warmup") == 0) {
      ok = parse_seconds(val, &o->warmup);
    } else if (strcmp(opt, "--search-seconds") == 0) {
      ok = parse_seconds(val, &o->search_seconds);
    } else if (strcmp(opt, "--latency-ms") == 0) {
      ok = parse_seconds(val, &o->latency_ms);
    } else if (strcmp(opt, "--max-clients") == 0) {
      ok = parse_uint(val, &o->max_clients, 0, GRAPH_MAX_UNITS);
    } else if (strcmp(opt, "--period") == 0) {
      ok = parse_uint(val, &o->period, 16, 4096) && (o->period & (o->period - 1)) == 0;
    } else if (strcmp(opt, "--search-step") == 0) {
      ok = parse_uint(val, &o->search_step, 1, 4096);
    } else if (strcmp(opt, "--search-max") == 0) {
      ok = parse_uint(val, &o->search_max, 16, 1 << 20);
    } else if (strcmp(opt, "--run") == 0) {
      ok = parse_uint(val, &o->run, 0, 1000000);
    } else {
      fprintf(stderr, "runway-bench-scale: unknown option %s\n", opt);
      scale_options_usage(stderr);
      return 2;
    }
    if (!ok || (takes && i + 1 >= argc)) {
      fprintf(stderr, "runway-bench-scale: bad value for %s: \"%s\"\n", opt, val);
      scale_options_usage(stderr);
      return 2;
    }
    i += takes;
  }
  if (o->quick) {
    o->slots[0] = 1, o->slots[1] = 2, o->n_slots = 2;
    /* ctest's budget is about 20 s: 13 windows of 1.1 s and the start-ups. */
    o->seconds = o->search_seconds = 0.8;
    o->warmup = 0.3;
    o->search_slots[0] = 1, o->n_search_slots = 1;
    o->search_step = o->period / 2;
    o->search_max = o->period + o->search_step;
    o->checks[0][0] = 2, o->checks[0][1] = 2 * o->period, o->n_checks = 1;
    table = o->search = checks = true;
  }
  o->table = table || (!o->search && !checks);
  if (!checks)
    o->n_checks = 0;
  if (o->search_max < o->period) {
    fprintf(stderr, "runway-bench-scale: --search-max is below one period\n");
    return 2;
  }
  return 0;
}
