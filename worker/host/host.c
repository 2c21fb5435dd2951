/*
 * runway-worker: runs one built-in plugin or one LV2 plugin for a runway
 * slot, or lists them.
 *
 *   runway-worker --plugin NAME [--slot NAME] [--socket PATH] [--max-block N]
 *                 [--wake-frames N]
 *   runway-worker --lv2 URI [same options]
 *   runway-worker --list [--json]
 *   runway-worker --list-lv2 [URI] [--json] [--sample-rate N]
 *
 * runwayd spawns it with the slot's segment inherited (RUNWAY_SEGMENT_FD and
 * RUNWAY_SEGMENT_WORKER_FD);
 * started by hand, it attaches over the control socket to a slot added with
 * --external. runwayd learns the catalogs from `runway-worker --list --json`
 * and `--list-lv2 [URI] --json`.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lv2host.h"
#include "plugins.h"

#include "version.h"

enum { EXIT_USAGE = 2 };

static void usage(FILE *out) {
  fprintf(out, "usage: runway-worker --plugin NAME [options]   run a built-in plugin for a slot\n"
               "       runway-worker --lv2 URI [options]       run an LV2 plugin for a slot\n"
               "       runway-worker --list [--json]           list the built-in plugins\n"
               "       runway-worker --list-lv2 [URI] [--json] list the installed LV2 plugins, or\n"
               "                                               one plugin's parameters\n"
               "\n"
               "options:\n"
               "  -p, --plugin NAME      the plugin to run (see --list)\n"
               "      --lv2 URI          the LV2 plugin to run (see --list-lv2); LV2_PATH says\n"
               "                         where plugins are looked for\n"
               "  -s, --slot NAME        slot to attach to (default: $RUNWAY_SLOT)\n"
               "  -S, --socket PATH      runwayd control socket (default: $RUNWAY_SOCKET, then\n"
               "                         $XDG_RUNTIME_DIR/runway/control.sock, then\n"
               "                         /run/runway/control.sock)\n"
               "  -b, --max-block N      largest block in frames (16..8192, default 256)\n"
               "  -w, --wake-frames N    pending input worth waking for (default: one period)\n"
               "  -l, --list             print the plugin catalog\n"
               "      --list-lv2         print the LV2 plugins runway can find (exit status 3:\n"
               "                         the URI given is not installed)\n"
               "  -j, --json             with --list or --list-lv2: print it as JSON\n"
               "      --sample-rate N    with --list-lv2 URI: the rate ranges relative to the\n"
               "                         sample rate are given for (default 48000)\n"
               "  -h, --help             print this help\n"
               "  -V, --version          print the version\n"
               "\n"
               "Started by runwayd, the slot's segment is inherited and no option but --plugin\n"
               "or --lv2 is needed. Started by hand, it attaches to a slot added with\n"
               "`runwayctl slot add NAME --external`.\n");
}

static int parse_u32(const char *text, const char *what, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > UINT32_MAX) {
    fprintf(stderr, "runway-worker: %s \"%s\" is not a whole number\n", what, text);
    return -1;
  }
  *out = (uint32_t)v;
  return 0;
}

static json_t *plugin_json(const rw_plugin *p) {
  json_t *params = json_array();
  for (uint32_t i = 0; i < p->n_params; i++) {
    const rw_param_info *q = &p->params[i];
    json_array_append_new(params,
                          json_pack("{s:I,s:s,s:f,s:f,s:f,s:s}", "id", (json_int_t)q->id, "name",
                                    q->name, "min", (double)q->min, "max", (double)q->max,
                                    "default", (double)q->def, "unit", q->unit ? q->unit : ""));
  }
  return json_pack("{s:s,s:s,s:I,s:I,s:b,s:o}", "name", p->name, "description", p->description,
                   "inputs", (json_int_t)p->n_inputs, "outputs", (json_int_t)p->n_outputs, "midi",
                   p->midi != 0, "params", params);
}

static int list_json(void) {
  json_t *plugins = json_array();
  for (size_t i = 0; plugin_catalog[i] != NULL; i++)
    json_array_append_new(plugins, plugin_json(plugin_catalog[i]));
  json_t *root = json_pack("{s:o}", "plugins", plugins);
  /* Seven digits print a float's value as written (0.95, not 0.949999988). */
  char *text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
  json_decref(root);
  if (text == NULL) {
    fprintf(stderr, "runway-worker: cannot encode the catalog\n");
    return 1;
  }
  int ok = puts(text) >= 0 && fflush(stdout) == 0;
  free(text);
  return ok ? 0 : 1;
}

static int list_text(void) {
  for (size_t i = 0; plugin_catalog[i] != NULL; i++) {
    const rw_plugin *p = plugin_catalog[i];
    printf("%-12s %u in, %u out%s  %s\n", p->name, p->n_inputs, p->n_outputs,
           p->midi ? ", MIDI" : "", p->description);
    for (uint32_t k = 0; k < p->n_params; k++) {
      const rw_param_info *q = &p->params[k];
      printf("    %2u %-12s %g .. %g, default %g %s\n", q->id, q->name, (double)q->min,
             (double)q->max, (double)q->def, q->unit ? q->unit : "");
    }
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

enum { OPT_LV2 = 256, OPT_LIST_LV2, OPT_SAMPLE_RATE };

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"lv2", required_argument, NULL, OPT_LV2},
      {"list-lv2", no_argument, NULL, OPT_LIST_LV2},
      {"sample-rate", required_argument, NULL, OPT_SAMPLE_RATE},
      {"plugin", required_argument, NULL, 'p'},
      {"slot", required_argument, NULL, 's'},
      {"socket", required_argument, NULL, 'S'},
      {"max-block", required_argument, NULL, 'b'},
      {"wake-frames", required_argument, NULL, 'w'},
      {"list", no_argument, NULL, 'l'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  rw_worker_options opts = {.api_version = RW_WORKER_API_VERSION};
  const char *plugin_name = NULL;
  const char *lv2_uri = NULL;
  int list_lv2 = 0;
  uint32_t sample_rate = 48000;
  int list = 0;
  int json = 0;
  int c;

  while ((c = getopt_long(argc, argv, "p:s:S:b:w:ljhV", longopts, NULL)) != -1) {
    switch (c) {
    case 'p':
      plugin_name = optarg;
      break;
    case 's':
      opts.slot = optarg;
      break;
    case 'S':
      opts.socket = optarg;
      break;
    case 'b':
      if (parse_u32(optarg, "--max-block", &opts.max_block) != 0)
        return EXIT_USAGE;
      break;
    case 'w':
      if (parse_u32(optarg, "--wake-frames", &opts.wake_frames) != 0)
        return EXIT_USAGE;
      break;
    case OPT_LV2:
      lv2_uri = optarg;
      break;
    case OPT_LIST_LV2:
      list_lv2 = 1;
      break;
    case OPT_SAMPLE_RATE:
      if (parse_u32(optarg, "--sample-rate", &sample_rate) != 0)
        return EXIT_USAGE;
      if (sample_rate < RW_MIN_SAMPLE_RATE || sample_rate > RW_MAX_SAMPLE_RATE) {
        fprintf(stderr, "runway-worker: --sample-rate must be between %u and %u\n",
                RW_MIN_SAMPLE_RATE, RW_MAX_SAMPLE_RATE);
        return EXIT_USAGE;
      }
      break;
    case 'l':
      list = 1;
      break;
    case 'j':
      json = 1;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("runway-worker %s (worker API %d)\n", RUNWAY_VERSION, RW_WORKER_API_VERSION);
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (list_lv2) {
    if (argc - optind > 1 || list || plugin_name != NULL || lv2_uri != NULL) {
      fprintf(stderr, "runway-worker: --list-lv2 takes at most one plugin URI and no other "
                      "plugin option\n");
      return EXIT_USAGE;
    }
    return lv2host_catalog_main(optind < argc ? argv[optind] : NULL, json, sample_rate);
  }
  if (optind < argc) {
    fprintf(stderr, "runway-worker: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return EXIT_USAGE;
  }
  if (plugin_name != NULL && lv2_uri != NULL) {
    fprintf(stderr, "runway-worker: give --plugin or --lv2, not both\n");
    return EXIT_USAGE;
  }
  if (lv2_uri != NULL) {
    if (list || json) {
      fprintf(stderr, "runway-worker: --lv2 runs a plugin; --list-lv2 URI describes one\n");
      return EXIT_USAGE;
    }
    return lv2host_session_main(lv2_uri, &opts);
  }
  if (list)
    return json ? list_json() : list_text();
  if (json) {
    fprintf(stderr, "runway-worker: --json only goes with --list\n");
    return EXIT_USAGE;
  }
  if (plugin_name == NULL) {
    fprintf(stderr, "runway-worker: say which plugin to run with --plugin NAME or --lv2 URI "
                    "(--list and --list-lv2 show them)\n");
    return EXIT_USAGE;
  }
  const rw_plugin *plugin = plugin_find(plugin_name);
  if (plugin == NULL) {
    fprintf(stderr, "runway-worker: no built-in plugin named \"%s\"; choose one of:", plugin_name);
    for (size_t i = 0; plugin_catalog[i] != NULL; i++)
      fprintf(stderr, " %s", plugin_catalog[i]->name);
    fprintf(stderr, "\n");
    return EXIT_USAGE;
  }
  return rw_worker_main(plugin, &opts);
}
