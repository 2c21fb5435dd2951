#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist.h"
#include "slot_state.h"
#include "slots.h"

#define STORE_FILE "slots.json"
#define STORE_MAX_BYTES (256u * 1024u * 1024u)
#define STORE_MIN_INTERVAL_MS 500
#define STORE_RETRY_MS 5000

static int store_path(const struct runwayd *d, char *buf, size_t len) {
  int n = snprintf(buf, len, "%s/%s", d->state_dir, STORE_FILE);
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int store_open(struct runwayd *d, char *err, size_t errlen) {
  d->store.orphans = json_array();
  int rc = persist_ensure_dir(d->state_dir, err, errlen);
  if (rc != 0) {
    snprintf(d->store.error, sizeof(d->store.error), "%s", err);
    return rc;
  }
  d->store.enabled = true;
  return 0;
}

static json_t *entry_of(const struct slot *s) {
  json_t *e = slot_definition_json(s);
  char *b64 = s->state_len > 0 ? persist_base64_encode(s->state_blob, s->state_len) : NULL;
  json_object_set_new(e, "params", slots_param_values(s));
  json_object_set_new(e, "state", b64 ? json_string(b64) : json_null());
  json_object_set_new(e, "from_config", json_boolean(s->from_config));
  free(b64);
  return e;
}

int store_flush(struct runwayd *d, bool force) {
  char path[4200], err[512];
  uint64_t now = base_mono_ms();
  if (!d->store.dirty || d->state_dir[0] == '\0')
    return 0;
  if (!force) {
    uint64_t wait = d->store.error[0] ? STORE_RETRY_MS : STORE_MIN_INTERVAL_MS;
    if (now - d->store.last_try_ms < wait)
      return 0;
  }
  d->store.last_try_ms = now;
  if (!d->store.enabled) {
    /* The directory may have become usable (created, remounted, permissions fixed). */
    if (persist_ensure_dir(d->state_dir, err, sizeof(err)) != 0) {
      snprintf(d->store.error, sizeof(d->store.error), "%s", err);
      return -EIO;
    }
    d->store.enabled = true;
  }

  json_t *slots = json_array();
  for (uint32_t i = 0; i < d->n_slots; i++)
    json_array_append_new(slots, entry_of(d->slots[i]));
  size_t k;
  json_t *o;
  json_array_foreach(d->store.orphans, k, o) json_array_append(slots, o);
  json_t *doc = json_pack("{s:s, s:i, s:o}", "format", "runway-slots", "version", 1, "slots", slots);
  char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
  json_decref(doc);
  if (text == NULL || store_path(d, path, sizeof(path)) != 0) {
    free(text);
    snprintf(d->store.error, sizeof(d->store.error), "cannot serialise the slots");
    return -ENOMEM;
  }
  size_t len = strlen(text);
  text[len] = '\n';
  int rc = persist_write_atomic(path, text, len + 1, err, sizeof(err));
  free(text);
  if (rc != 0) {
    /* Reported once per distinct error; the previous file is intact and we retry. */
    if (strcmp(d->store.error, err) != 0)
      log_error("cannot save the slots (the previous %s is kept; retrying): %s", path, err);
    snprintf(d->store.error, sizeof(d->store.error), "%s", err);
    return rc;
  }
  if (d->store.error[0] != '\0')
    log_info("slots saved to %s again", path);
  d->store.error[0] = '\0';
  d->store.dirty = false;
  return 0;
}

static int restore_entry(struct runwayd *d, json_t *e, char *err, size_t errlen) {
  struct slot_spec spec;
  if (slot_spec_from_json(e, &spec, err, errlen) != 0)
    return -EINVAL;
  struct slot *s;
  enum proto_err code = slots_add(d, &spec, &s, err, errlen);
  if (code != PROTO_OK)
    return -EINVAL;
  slots_set_param_values(s, json_object_get(e, "params"));
  s->from_config = json_is_true(json_object_get(e, "from_config"));
  const char *b64 = json_string_value(json_object_get(e, "state"));
  if (b64 != NULL) {
    unsigned char *blob;
    size_t len;
    if (persist_base64_decode(b64, &blob, &len) == 0) {
      slot_state_set_blob(s, blob, len);
      free(blob);
    } else {
      log_warn("slot %s: its saved state is not valid base64; starting without it", s->name);
    }
  }
  return 0;
}

int store_load(struct runwayd *d, char *err, size_t errlen) {
  char path[4200], why[512];
  char *text;
  size_t len;
  if (!d->store.enabled || store_path(d, path, sizeof(path)) != 0)
    return 0;
  int rc = persist_read_file(path, STORE_MAX_BYTES, &text, &len, err, errlen);
  if (rc == -ENOENT)
    return 0;
  if (rc != 0)
    return rc;
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, 0, &jerr);
  free(text);
  json_t *slots = json_object_get(doc, "slots");
  if (!json_is_array(slots) || json_integer_value(json_object_get(doc, "version")) != 1) {
    json_decref(doc);
    snprintf(err, errlen, "%s is not a runway slots file (version 1); move it away to start "
                          "afresh", path);
    return -EPROTO;
  }
  size_t i;
  json_t *e;
  uint32_t restored = 0;
  json_array_foreach(slots, i, e) {
    if (restore_entry(d, e, why, sizeof(why)) == 0) {
      restored++;
    } else {
      /* Kept in the file: a plugin missing today may be installed tomorrow. */
      log_error("cannot restore a slot from %s: %s; keeping its entry", path, why);
      json_array_append(d->store.orphans, e);
    }
  }
  json_decref(doc);
  if (restored > 0)
    log_info("restored %u slot(s) from %s", restored, path);
  d->store.dirty = false;
  return 0;
}

json_t *store_status_json(const struct runwayd *d) {
  return json_pack("{s:s, s:b, s:o}", "dir", d->state_dir,
                   "saved", d->store.enabled && !d->store.dirty && d->store.error[0] == '\0',
                   "error", d->store.error[0] ? json_string(d->store.error) : json_null());
}

void store_close(struct runwayd *d) {
  json_decref(d->store.orphans);
  d->store.orphans = NULL;
}
