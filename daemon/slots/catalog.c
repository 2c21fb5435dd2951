#include "catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <runway/segment.h>

extern char **environ;

#define CATALOG_MAX_OUTPUT (1024 * 1024)

static char *read_all(int fd, size_t *len) {
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  for (;;) {
    if (n + 1 >= cap) {
      if (cap >= CATALOG_MAX_OUTPUT) {
        free(buf);
        return NULL;
      }
      char *grown = realloc(buf, cap * 2);
      if (grown == NULL) {
        free(buf);
        return NULL;
      }
      buf = grown;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      free(buf);
      return NULL;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

int catalog_load(struct catalog *c, const char *worker_path, char *err, size_t errlen) {
  int pipefd[2];
  pid_t pid;
  int rc;
  memset(c, 0, sizeof(*c));
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    return -errno;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  char *const argv[] = {(char *)worker_path, "--list", "--json", NULL};
  rc = posix_spawnp(&pid, worker_path, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    snprintf(err, errlen, "cannot run %s: %s (set RUNWAY_WORKER or --worker to its path)",
             worker_path, strerror(rc));
    return -rc;
  }
  size_t len = 0;
  char *out = read_all(pipefd[0], &len);
  close(pipefd[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (out == NULL || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    free(out);
    snprintf(err, errlen, "%s --list --json failed", worker_path);
    return -EIO;
  }
  json_error_t jerr;
  json_t *doc = json_loadb(out, len, 0, &jerr);
  free(out);
  if (doc == NULL) {
    snprintf(err, errlen, "%s --list --json printed invalid JSON: %s", worker_path, jerr.text);
    return -EPROTO;
  }
  rc = catalog_parse(c, doc, err, errlen);
  json_decref(doc);
  return rc;
}

static char *dup_string(json_t *v) {
  return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int catalog_parse(struct catalog *c, json_t *doc, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  json_t *list = json_object_get(doc, "plugins");
  if (!json_is_array(list)) {
    snprintf(err, errlen, "plugin catalog has no \"plugins\" array");
    return -EPROTO;
  }
  size_t n = json_array_size(list);
  c->plugins = calloc(n ? n : 1, sizeof(*c->plugins));
  if (c->plugins == NULL)
    return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    json_t *p = json_array_get(list, i);
    json_t *params = json_object_get(p, "params");
    json_int_t nin = json_integer_value(json_object_get(p, "inputs"));
    json_int_t nout = json_integer_value(json_object_get(p, "outputs"));
    if (!json_is_string(json_object_get(p, "name")) || nin < 0 || nin > RW_MAX_CHANNELS ||
        nout < 0 || nout > RW_MAX_CHANNELS || (params != NULL && !json_is_array(params))) {
      snprintf(err, errlen, "plugin catalog entry %zu is malformed", i);
      catalog_free(c);
      return -EPROTO;
    }
    struct catalog_plugin *cp = &c->plugins[c->n_plugins++];
    cp->name = dup_string(json_object_get(p, "name"));
    cp->n_inputs = (uint32_t)nin;
    cp->n_outputs = (uint32_t)nout;
    cp->midi = json_is_true(json_object_get(p, "midi"));
    size_t np = json_array_size(params);
    cp->params = calloc(np ? np : 1, sizeof(*cp->params));
    if (cp->name == NULL || cp->params == NULL) {
      catalog_free(c);
      return -ENOMEM;
    }
    for (size_t k = 0; k < np; k++) {
      json_t *q = json_array_get(params, k);
      json_t *id = json_object_get(q, "id");
      if (!json_is_integer(id) || json_integer_value(id) < 0 ||
          !json_is_string(json_object_get(q, "name"))) {
        snprintf(err, errlen, "parameter %zu of plugin %s is malformed", k, cp->name);
        catalog_free(c);
        return -EPROTO;
      }
      struct catalog_param *cq = &cp->params[cp->n_params++];
      cq->id = (uint32_t)json_integer_value(id);
      cq->name = dup_string(json_object_get(q, "name"));
      cq->min = json_number_value(json_object_get(q, "min"));
      cq->max = json_number_value(json_object_get(q, "max"));
      cq->def = json_number_value(json_object_get(q, "default"));
      cq->unit = dup_string(json_object_get(q, "unit"));
      if (cq->unit == NULL)
        cq->unit = strdup("");
      if (cq->name == NULL || cq->unit == NULL) {
        catalog_free(c);
        return -ENOMEM;
      }
    }
  }
  c->json = json_incref(doc);
  return 0;
}

const struct catalog_plugin *catalog_find(const struct catalog *c, const char *name) {
  for (uint32_t i = 0; i < c->n_plugins; i++)
    if (strcmp(c->plugins[i].name, name) == 0)
      return &c->plugins[i];
  return NULL;
}

void catalog_free(struct catalog *c) {
  for (uint32_t i = 0; i < c->n_plugins; i++) {
    struct catalog_plugin *p = &c->plugins[i];
    for (uint32_t k = 0; k < p->n_params; k++) {
      free(p->params[k].name);
      free(p->params[k].unit);
    }
    free(p->params);
    free(p->name);
  }
  free(c->plugins);
  json_decref(c->json);
  memset(c, 0, sizeof(*c));
}
