#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "lv2.h"
#include "slot_state.h"
#include "slots.h"
#include "store.h"

struct parse {
  struct config *c;
  json_t *slot; /* the [slot NAME] section being read, or NULL for [daemon] */
  FILE *file;
  int line;        /* of the text inih is reading now (counted by our reader) */
  int pieces;      /* reads inih made: its own line numbers, which long lines skew */
  int error_line;  /* of the first problem found here; 0: none */
  int error_piece; /* inih's number for that line */
  bool in_long_line;
  char error[256];
};

/*
 * inih's reader, counting lines so that a problem is reported with its own
 * line. A line longer than inih's buffer comes in pieces, each of which inih
 * counts as a line and parses on its own: such a line is a problem itself.
 */
static char *read_line(char *str, int num, void *stream) {
  struct parse *p = stream;
  char *r = fgets(str, num, p->file);
  if (r == NULL)
    return NULL;
  p->pieces++;
  bool whole = strchr(r, '\n') != NULL || feof(p->file);
  if (!whole && !p->in_long_line && p->error_line == 0) {
    snprintf(p->error, sizeof(p->error), "the line is longer than %d bytes", num - 2);
    p->error_line = p->line + 1;
    p->error_piece = p->pieces;
  }
  p->in_long_line = !whole;
  if (whole)
    p->line++;
  return r;
}

static bool parse_bool(const char *v, bool *out) {
  if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1")) {
    *out = true;
    return true;
  }
  if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0")) {
    *out = false;
    return true;
  }
  return false;
}

static bool parse_number(const char *v, double *out) {
  char *end;
  *out = strtod(v, &end);
  return end != v && *end == '\0' && isfinite(*out);
}

static bool parse_integer(const char *v, long long *out) {
  char *end;
  errno = 0;
  *out = strtoll(v, &end, 10);
  return end != v && *end == '\0' && errno == 0;
}

static int bad(struct parse *p, const char *fmt, const char *a, const char *b) {
  /* inih reads on after a problem: keep the first one, with its line. */
  if (p->error_line == 0) {
    snprintf(p->error, sizeof(p->error), fmt, a, b);
    p->error_line = p->line;
    p->error_piece = p->pieces;
  }
  return 0; /* tells inih to report this line */
}

static int daemon_key(struct parse *p, const char *name, const char *value) {
  static const char *const strings[] = {"backend",      "name",        "socket",
                                        "socket_group", "state_dir",   "log_level",
                                        "worker",       "worker_user", "worker_env"};
  double d;
  long long i;
  for (size_t k = 0; k < sizeof(strings) / sizeof(strings[0]); k++) {
    if (strcmp(name, strings[k]) == 0) {
      json_object_set_new(p->c->daemon, name, json_string(value));
      return 1;
    }
  }
  if (strcmp(name, "latency_ms") == 0) {
    if (!parse_number(value, &d) || d <= 0 || d > 2000)
      return bad(p, "[daemon] latency_ms wants milliseconds in (0, 2000], not \"%s\"%s", value, "");
    json_object_set_new(p->c->daemon, name, json_real(d));
    return 1;
  }
  if (strcmp(name, "max_slots_per_user") == 0 || strcmp(name, "max_memory_mb_per_user") == 0 ||
      strcmp(name, "max_memory_mb") == 0) {
    long long max = strcmp(name, "max_slots_per_user") == 0 ? ENGINE_MAX_SLOTS : 1ll << 20;
    if (!parse_integer(value, &i) || i < 1 || i > max)
      return bad(p, "[daemon] %s wants a whole number from 1 on, not \"%s\"", name, value);
    json_object_set_new(p->c->daemon, name, json_integer(i));
    return 1;
  }
  if (strcmp(name, "stall_timeout_ms") == 0) {
    if (!parse_integer(value, &i) || i < 100 || i > 3600000)
      return bad(p, "[daemon] stall_timeout_ms wants milliseconds in [100, 3600000], not \"%s\"%s",
                 value, "");
    json_object_set_new(p->c->daemon, name, json_integer(i));
    return 1;
  }
  return bad(p, "unknown key \"%s\" in [daemon]%s", name, "");
}

static int slot_key(struct parse *p, const char *name, const char *value) {
  json_t *s = p->slot;
  const char *slot = json_string_value(json_object_get(s, "name"));
  double d;
  long long i;
  bool b;
  if (strncmp(name, "param.", 6) == 0) {
    if (name[6] == '\0' || !parse_number(value, &d))
      return bad(p, "%s wants a number, not \"%s\"", name, value);
    json_object_set_new(json_object_get(s, "params"), name + 6, json_real(d));
    return 1;
  }
  if (json_object_get(s, name) != NULL)
    return bad(p, "\"%s\" given twice in [slot %s]", name, slot);
  if (strcmp(name, "plugin") == 0 || strcmp(name, "lv2") == 0 || strcmp(name, "exec") == 0) {
    json_object_set_new(s, name, json_string(value));
    return 1;
  }
  if (strcmp(name, "on_fault") == 0) {
    enum slot_on_fault mode;
    if (slot_on_fault_parse(value, &mode) != 0)
      return bad(p, "on_fault is silence or bypass, not \"%s\"%s", value, "");
    json_object_set_new(s, name, json_string(value));
    return 1;
  }
  if (strcmp(name, "external") == 0 || strcmp(name, "midi") == 0) {
    if (!parse_bool(value, &b))
      return bad(p, "%s wants yes or no, not \"%s\"", name, value);
    json_object_set_new(s, name, json_boolean(b));
    return 1;
  }
  if (strcmp(name, "inputs") == 0 || strcmp(name, "outputs") == 0 ||
      strcmp(name, "latency_frames") == 0) {
    if (!parse_integer(value, &i) || i < 0 || i > 1000000)
      return bad(p, "%s wants a whole number, not \"%s\"", name, value);
    json_object_set_new(s, name, json_integer(i));
    return 1;
  }
  if (strcmp(name, "latency_ms") == 0) {
    if (!parse_number(value, &d) || d <= 0)
      return bad(p, "%s wants milliseconds, not \"%s\"", name, value);
    json_object_set_new(s, name, json_real(d));
    return 1;
  }
  return bad(p, "unknown key \"%s\" in [slot %s]", name, slot);
}

static int on_entry(void *user, const char *section, const char *name, const char *value) {
  struct parse *p = user;
  /* inih reports a new section with name == NULL only in some builds; detect it ourselves. */
  if (strcmp(section, "daemon") == 0) {
    p->slot = NULL;
    return daemon_key(p, name, value);
  }
  if (strncmp(section, "slot ", 5) != 0 || !proto_valid_slot_name(section + 5))
    return bad(p, "unknown section [%s]: use [daemon] or [slot NAME] (NAME: A-Z a-z 0-9 _ -)%s",
               section, "");
  const char *slot = section + 5;
  const char *cur = json_string_value(json_object_get(p->slot, "name"));
  if (p->slot == NULL || strcmp(cur, slot) != 0) {
    size_t i;
    json_t *e;
    json_array_foreach(p->c->slots, i, e) {
      if (strcmp(json_string_value(json_object_get(e, "name")), slot) == 0)
        return bad(p, "[slot %s] appears twice%s", slot, "");
    }
    p->slot = json_pack("{s:s, s:{}}", "name", slot, "params");
    json_array_append_new(p->c->slots, p->slot);
  }
  return slot_key(p, name, value);
}

int config_load(const char *path, struct config *c, char *err, size_t errlen) {
  struct parse p = {.c = c};
  p.file = fopen(path, "re");
  if (p.file == NULL) {
    snprintf(err, errlen, "cannot open the configuration file %s: %s", path, strerror(errno));
    return -ENOENT;
  }
  c->daemon = json_object();
  c->slots = json_array();
  int line = ini_parse_stream(read_line, &p, on_entry, &p);
  fclose(p.file);
  if (line != 0 || p.error_line != 0) {
    /*
     * inih returns the first line it found bad, in its own numbering (pieces
     * of long lines). When the first problem is one found here, it is said
     * with its real line; a line inih itself could not parse (no '=' or ']')
     * before it gets the general explanation, its number still exact.
     */
    if (p.error_line != 0 && (line == 0 || line >= p.error_piece))
      snprintf(err, errlen, "%s:%d: %s", path, p.error_line, p.error);
    else
      snprintf(err, errlen, "%s:%d: %s", path, line,
               "not a valid INI line ([section], key = value, ; comment)");
    config_free(c);
    return -EINVAL;
  }
  /* Each slot needs exactly one source of audio. */
  size_t i;
  json_t *e;
  json_array_foreach(c->slots, i, e) {
    int kinds = (json_object_get(e, "plugin") != NULL) + (json_object_get(e, "lv2") != NULL) +
                (json_object_get(e, "exec") != NULL) + json_is_true(json_object_get(e, "external"));
    if (kinds != 1) {
      snprintf(err, errlen,
               "%s: [slot %s] needs exactly one of plugin, lv2, exec or external = yes", path,
               json_string_value(json_object_get(e, "name")));
      config_free(c);
      return -EINVAL;
    }
    enum slot_kind kind = json_object_get(e, "plugin") ? SLOT_PLUGIN
                          : json_object_get(e, "lv2")  ? SLOT_LV2
                          : json_object_get(e, "exec") ? SLOT_EXEC
                                                       : SLOT_EXTERNAL;
    json_object_set_new(e, "kind", json_string(slot_kind_name(kind)));
  }
  return 0;
}

void config_free(struct config *c) {
  json_decref(c->daemon);
  json_decref(c->slots);
  c->daemon = c->slots = NULL;
}

int config_apply_options(const struct config *c, struct runwayd_options *opt, const json_t *cli_set,
                         char *err, size_t errlen) {
  const char *key;
  json_t *v;
  json_object_foreach(c->daemon, key, v) {
    if (json_object_get(cli_set, key) != NULL)
      continue; /* the command line wins */
    if (strcmp(key, "name") == 0)
      opt->name = json_string_value(v);
    else if (strcmp(key, "backend") == 0) {
      if (backend_find(json_string_value(v), err, errlen) == NULL)
        return -EINVAL;
      opt->backend = json_string_value(v);
    } else if (strcmp(key, "socket") == 0) {
      if (proto_socket_path(json_string_value(v), opt->socket_path, sizeof(opt->socket_path))) {
        snprintf(err, errlen, "socket path %s is too long", json_string_value(v));
        return -EINVAL;
      }
    } else if (strcmp(key, "socket_group") == 0)
      opt->socket_group = json_string_value(v);
    else if (strcmp(key, "state_dir") == 0)
      opt->state_dir = json_string_value(v);
    else if (strcmp(key, "latency_ms") == 0)
      opt->latency_ms = json_number_value(v);
    else if (strcmp(key, "stall_timeout_ms") == 0)
      opt->stall_timeout_ms = (uint64_t)json_integer_value(v);
    else if (strcmp(key, "max_slots_per_user") == 0)
      opt->max_slots_per_user = (uint32_t)json_integer_value(v);
    else if (strcmp(key, "max_memory_mb_per_user") == 0)
      opt->max_memory_mb_per_user = (uint64_t)json_integer_value(v);
    else if (strcmp(key, "max_memory_mb") == 0)
      opt->max_memory_mb = (uint64_t)json_integer_value(v);
    else if (strcmp(key, "worker") == 0) {
      /* Never looked up in $PATH, nor relative to wherever runwayd was started. */
      const char *path = json_string_value(v);
      if (path[0] != '/' || strlen(path) >= sizeof(opt->worker_path)) {
        snprintf(err, errlen, "worker = %s: give runway-worker's absolute path", path);
        return -EINVAL;
      }
      snprintf(opt->worker_path, sizeof(opt->worker_path), "%s", path);
    } else if (strcmp(key, "worker_user") == 0)
      opt->worker_user = json_string_value(v);
    else if (strcmp(key, "worker_env") == 0)
      opt->worker_env = json_string_value(v);
    else if (strcmp(key, "log_level") == 0 &&
             log_parse_level(json_string_value(v), &opt->log_level) != 0) {
      snprintf(err, errlen, "log_level is one of error, warn, info, debug; not \"%s\"",
               json_string_value(v));
      return -EINVAL;
    }
  }
  return 0;
}

/* The definition part of a [slot] entry: everything but its parameters. */
static json_t *definition_of(const json_t *def) {
  json_t *copy = json_deep_copy(def);
  json_object_del(copy, "params");
  return copy;
}

/*
 * Whether a slot that exists (restored from the state directory, or added at
 * run time) already is what a [slot] section declares.
 */
static bool matches(const struct slot *s, const json_t *want) {
  json_t *v;
  enum slot_kind k;
  if (slot_kind_parse(json_string_value(json_object_get(want, "kind")), &k) != 0)
    return false;
  const char *plugin = json_string_value(json_object_get(want, k == SLOT_LV2 ? "lv2" : "plugin"));
  const char *exec = json_string_value(json_object_get(want, "exec"));
  if (s->kind != k || (plugin && (!s->plugin || strcmp(plugin, s->plugin))) ||
      (exec && (!s->exec || strcmp(exec, s->exec))))
    return false;
  if ((v = json_object_get(want, "inputs")) && json_integer_value(v) != s->n_in)
    return false;
  if ((v = json_object_get(want, "outputs")) && json_integer_value(v) != s->n_out)
    return false;
  if ((v = json_object_get(want, "midi")) && json_is_true(v) != s->midi)
    return false;
  enum slot_on_fault mode = SLOT_ON_FAULT_SILENCE;
  if ((v = json_object_get(want, "on_fault")) != NULL &&
      slot_on_fault_parse(json_string_value(v), &mode) != 0)
    return false;
  if (mode != s->on_fault)
    return false;
  return json_number_value(json_object_get(want, "latency_ms")) == s->latency_ms &&
         json_integer_value(json_object_get(want, "latency_frames")) == s->latency_frames;
}

static struct slot *add_declared(struct runwayd *d, json_t *def, const json_t *carry_params,
                                 const unsigned char *blob, size_t blob_len) {
  char err[512];
  struct slot *s;
  struct slot_spec spec;
  if (slot_spec_from_json(def, &spec, err, sizeof(err)) != 0) {
    log_error("configuration: %s", err);
    return NULL;
  }
  /* The configuration file is root's or the daemon's own to write. */
  spec.privileged = true;
  spec.owner = geteuid();
  /*
   * An LV2 plugin is described first: its channel counts where the file
   * gives none, and whether runway can host it at all. The daemon waits for
   * the answer (tens of milliseconds), as it waits for the file.
   */
  json_t *answer = NULL;
  if (spec.kind == SLOT_LV2 &&
      (lv2_query_wait(d, spec.plugin ? spec.plugin : "", &answer, err, sizeof(err)) != PROTO_OK ||
       lv2_fill_spec(answer, spec.plugin, &spec, err, sizeof(err)) != PROTO_OK)) {
    log_error("configuration: cannot add slot %s: %s", spec.name, err);
    json_decref(answer);
    return NULL;
  }
  json_decref(answer);
  if (slots_add(d, &spec, &s, err, sizeof(err)) != PROTO_OK) {
    log_error("configuration: cannot add slot %s: %s", spec.name, err);
    return NULL;
  }
  s->from_config = true;
  s->config_def = json_deep_copy(def);
  slots_set_param_values(s, json_object_get(def, "params"));
  if (carry_params != NULL)
    slots_set_param_values(s, carry_params);
  if (blob_len > 0)
    slot_state_set_blob(s, blob, blob_len);
  return s;
}

void config_apply_slots(struct runwayd *d, const struct config *c) {
  size_t i;
  json_t *def;
  /* Declared slots that went away from the file go away too. */
  for (uint32_t k = 0; k < d->n_slots;) {
    struct slot *s = d->slots[k];
    bool still = false;
    json_array_foreach(c->slots, i, def) still |=
        strcmp(json_string_value(json_object_get(def, "name")), s->name) == 0;
    if (s->from_config && !still) {
      log_info("configuration: slot %s is no longer declared; removing it", s->name);
      slots_remove(d, s);
      continue;
    }
    k++;
  }
  json_array_foreach(c->slots, i, def) {
    const char *name = json_string_value(json_object_get(def, "name"));
    struct slot *s = slots_find(d, name);
    json_t *want = definition_of(def);
    if (s == NULL) {
      add_declared(d, def, NULL, NULL, 0);
    } else {
      json_t *had = s->config_def ? definition_of(s->config_def) : NULL;
      if (had == NULL || !json_equal(had, want)) {
        /*
         * New to the file, or its definition changed: rebuild it from the
         * file, keeping the values and state it had (a restarted daemon
         * brings back slots whose definition the file also declares).
         */
        json_t *values = slots_param_values(s);
        unsigned char *blob = NULL;
        size_t blob_len = s->state_len;
        if (blob_len > 0 && (blob = malloc(blob_len)) != NULL)
          memcpy(blob, s->state_blob, blob_len);
        if (had == NULL && matches(s, want)) {
          s->from_config = true;
          s->config_def = json_deep_copy(def);
        } else {
          log_info("configuration: slot %s changed; rebuilding it", name);
          slots_remove(d, s);
          add_declared(d, def, values, blob, blob ? blob_len : 0);
        }
        free(blob);
        json_decref(values);
      } else {
        /* Same slot: apply only the parameters whose configured value changed. */
        json_t *old = json_object_get(s->config_def, "params");
        json_t *now = json_object_get(def, "params");
        json_t *changed = json_object();
        const char *key;
        json_t *v;
        json_object_foreach(now, key, v) if (!json_equal(v, json_object_get(old, key)))
            json_object_set(changed, key, v);
        if (json_object_size(changed) > 0)
          slots_set_param_values(s, changed);
        json_decref(changed);
        json_decref(s->config_def);
        s->config_def = json_deep_copy(def);
      }
      json_decref(had);
    }
    json_decref(want);
  }
  store_mark_dirty(d);
}

int config_reload(struct runwayd *d, char *err, size_t errlen) {
  struct config c;
  if (d->opt.config_path == NULL) {
    snprintf(err, errlen, "no configuration file (start runwayd with --config FILE)");
    return -ENOENT;
  }
  int rc = config_load(d->opt.config_path, &c, err, errlen);
  if (rc != 0)
    return rc;
  /* What can change at run time; the rest is read at start only. */
  const char *key;
  json_t *v;
  json_object_foreach(c.daemon, key, v) {
    if (json_object_get(d->cli_set, key) != NULL)
      continue;
    if (strcmp(key, "log_level") == 0) {
      enum log_level level;
      if (log_parse_level(json_string_value(v), &level) == 0) {
        d->opt.log_level = level;
        log_set_level(level);
      }
    } else if (strcmp(key, "latency_ms") == 0) {
      d->opt.latency_ms = json_number_value(v);
    } else if (strcmp(key, "stall_timeout_ms") == 0) {
      d->opt.stall_timeout_ms = (uint64_t)json_integer_value(v);
      d->supervise.stall_timeout_ms = d->opt.stall_timeout_ms;
    } else if (strcmp(key, "max_slots_per_user") == 0) {
      d->opt.max_slots_per_user = (uint32_t)json_integer_value(v);
    } else if (strcmp(key, "max_memory_mb_per_user") == 0) {
      d->opt.max_memory_mb_per_user = (uint64_t)json_integer_value(v);
    } else if (strcmp(key, "max_memory_mb") == 0) {
      d->opt.max_memory_mb = (uint64_t)json_integer_value(v);
    } else if (!json_equal(v, json_object_get(d->config.daemon, key))) {
      log_warn("configuration: [daemon] %s changed; it takes effect when runwayd restarts", key);
    }
  }
  config_apply_slots(d, &c);
  /* The boot configuration stays (options point into it); this one replaces the last reload's. */
  config_free(&d->config_reloaded);
  d->config_reloaded = c;
  return 0;
}
