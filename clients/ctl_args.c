#include "ctl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_POSITIONAL 16
#define CMD_NAME_MAX 64

static int usage_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int usage_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err != NULL && errlen > 0) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -EINVAL;
}

/* "slot.add" -> "slot add" */
static void spoken(const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s", name);
  for (char *p = buf; *p; p++)
    if (*p == '.')
      *p = ' ';
}

/* "latency_ms" -> "latency-ms" */
static void option_spelling(const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s", name);
  for (char *p = buf; *p; p++)
    if (*p == '_')
      *p = '-';
}

/* "name" -> "NAME" */
static void metavar(const char *name, char *buf, size_t len) {
  snprintf(buf, len, "%s", name);
  for (char *p = buf; *p; p++)
    if (*p >= 'a' && *p <= 'z')
      *p = (char)(*p - 'a' + 'A');
}

static const char *type_metavar(enum proto_type type) {
  switch (type) {
  case PROTO_T_STRING:
    return "TEXT";
  case PROTO_T_INT:
    return "N";
  case PROTO_T_NUMBER:
    return "X";
  case PROTO_T_BOOL:
    return "";
  case PROTO_T_ARRAY:
  case PROTO_T_OBJECT:
    return "JSON";
  case PROTO_T_STRING_OR_INT:
    return "NAME|ID";
  }
  return "VALUE";
}

static const struct proto_command *find_cli_command(const char *name) {
  const struct proto_command *c = proto_find_command(name);
  return c != NULL && c->usage != NULL ? c : NULL;
}

/* 1 when some runwayctl command is called prefix + "." + something. */
static int has_longer(const char *prefix) {
  size_t n = strlen(prefix);
  for (int i = 0; i < PROTO_CMD_COUNT; i++) {
    const struct proto_command *c = &proto_commands[i];
    if (c->usage != NULL && strncmp(c->name, prefix, n) == 0 && c->name[n] == '.')
      return 1;
  }
  return 0;
}

/* "add, list, remove, restart" for the commands under prefix. */
static void subcommands(const char *prefix, char *buf, size_t len) {
  size_t n = strlen(prefix), used = 0;
  buf[0] = '\0';
  for (int i = 0; i < PROTO_CMD_COUNT; i++) {
    const struct proto_command *c = &proto_commands[i];
    if (c->usage == NULL || strncmp(c->name, prefix, n) != 0 || c->name[n] != '.')
      continue;
    int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", c->name + n + 1);
    if (w < 0 || (size_t)w >= len - used)
      return;
    used += (size_t)w;
  }
}

static int parse_int(const char *s, json_int_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (s[0] == '\0' || *end != '\0' || errno != 0)
    return -1;
  *out = (json_int_t)v;
  return 0;
}

static int parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (s[0] == '\0' || *end != '\0' || errno != 0 || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

/* The daemon may run elsewhere in the file system: send it an absolute path. */
static json_t *absolute_path(const char *text, const char *shown, char *err, size_t errlen) {
  char cwd[4096];
  if (text[0] == '\0') {
    usage_err(err, errlen, "%s needs a file name", shown);
    return NULL;
  }
  if (getcwd(cwd, sizeof(cwd)) == NULL) {
    usage_err(err, errlen, "cannot tell the current directory to resolve %s; give an absolute path",
              text);
    return NULL;
  }
  size_t n = strlen(cwd) + 1 + strlen(text) + 1;
  char *full = malloc(n);
  if (full == NULL)
    return NULL;
  snprintf(full, n, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, text);
  json_t *v = json_string(full);
  free(full);
  return v;
}

/* The JSON value of a command-line word for an argument of the given type. */
static json_t *convert(const struct proto_arg *a, const char *text, const char *shown, char *err,
                       size_t errlen) {
  json_int_t i;
  double d;
  json_t *v;

  switch (a->type) {
  case PROTO_T_INT:
    if (parse_int(text, &i) != 0) {
      usage_err(err, errlen, "%s expects an integer, not \"%s\"", shown, text);
      return NULL;
    }
    return json_integer(i);
  case PROTO_T_NUMBER:
    if (parse_int(text, &i) == 0)
      return json_integer(i);
    if (parse_double(text, &d) != 0) {
      usage_err(err, errlen, "%s expects a number, not \"%s\"", shown, text);
      return NULL;
    }
    return json_real(d);
  case PROTO_T_STRING_OR_INT:
    if (parse_int(text, &i) == 0)
      return json_integer(i);
    break;
  case PROTO_T_BOOL:
    if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "1") == 0)
      return json_true();
    if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0 || strcmp(text, "0") == 0)
      return json_false();
    usage_err(err, errlen, "%s takes no value, or true or false; not \"%s\"", shown, text);
    return NULL;
  case PROTO_T_ARRAY:
  case PROTO_T_OBJECT:
    v = json_loads(text, 0, NULL);
    if (v == NULL || (a->type == PROTO_T_ARRAY ? !json_is_array(v) : !json_is_object(v))) {
      json_decref(v);
      usage_err(err, errlen, "%s expects a JSON %s", shown, proto_type_name(a->type));
      return NULL;
    }
    return v;
  case PROTO_T_STRING:
    if (a->path && text[0] != '/')
      return absolute_path(text, shown, err, errlen);
    break;
  }
  v = json_string(text);
  if (v == NULL)
    usage_err(err, errlen, "%s is not valid UTF-8", shown);
  return v;
}

/* Checks that the table's schema cannot express. */
static int check_slot_add(const json_t *args, char *err, size_t errlen) {
  int sources = (json_object_get(args, "plugin") != NULL) + (json_object_get(args, "lv2") != NULL) +
                (json_object_get(args, "exec") != NULL) +
                json_is_true(json_object_get(args, "external"));
  if (sources != 1)
    return usage_err(err, errlen,
                     "slot add needs exactly one of --plugin P, --lv2 URI, "
                     "--exec \"CMD\" or --external");
  if (json_object_get(args, "latency_ms") != NULL &&
      json_object_get(args, "latency_frames") != NULL)
    return usage_err(err, errlen, "give --latency-ms or --latency-frames, not both");
  return 0;
}

/* --on-fault names one of the two behaviours. */
static int check_on_fault(const json_t *args, char *err, size_t errlen) {
  const char *mode = json_string_value(json_object_get(args, "on_fault"));
  if (mode != NULL && strcmp(mode, "silence") != 0 && strcmp(mode, "bypass") != 0)
    return usage_err(err, errlen, "--on-fault is silence or bypass, not \"%s\"", mode);
  return 0;
}

static int check_crossfade(const json_t *args, char *err, size_t errlen) {
  const json_t *v = json_object_get(args, "crossfade_ms");
  if (v != NULL && !(json_number_value(v) >= 0 && json_number_value(v) <= 1000))
    return usage_err(err, errlen, "--crossfade-ms is 0 to 1000 milliseconds");
  return 0;
}

static int check_slot_add_all(const json_t *args, char *err, size_t errlen) {
  int rc = check_slot_add(args, err, errlen);
  return rc != 0 ? rc : check_on_fault(args, err, errlen);
}

static int check_slot_restart(const json_t *args, char *err, size_t errlen) {
  if (json_object_get(args, "crossfade_ms") != NULL &&
      !json_is_true(json_object_get(args, "seamless")))
    return usage_err(err, errlen, "--crossfade-ms goes with --seamless");
  return check_crossfade(args, err, errlen);
}

static int check_slot_replace(const json_t *args, char *err, size_t errlen) {
  int sources = (json_object_get(args, "plugin") != NULL) + (json_object_get(args, "lv2") != NULL) +
                (json_object_get(args, "exec") != NULL);
  if (sources != 1)
    return usage_err(err, errlen,
                     "slot replace needs exactly one of --plugin P, --lv2 URI or --exec \"CMD\"");
  int rc = check_on_fault(args, err, errlen);
  return rc != 0 ? rc : check_crossfade(args, err, errlen);
}

static int check_top(const json_t *args, char *err, size_t errlen) {
  const json_t *v = json_object_get(args, "interval");
  if (v != NULL && !(json_number_value(v) >= 0.1 && json_number_value(v) <= 60))
    return usage_err(err, errlen, "--interval is 0.1 to 60 seconds");
  return 0;
}

typedef int (*check_fn)(const json_t *args, char *err, size_t errlen);

/* Per command, what runwayctl checks beyond the schema before it sends anything. */
static const check_fn extra_checks[PROTO_CMD_COUNT] = {
    [PROTO_CMD_SLOT_ADD] = check_slot_add_all,
    [PROTO_CMD_SLOT_RESTART] = check_slot_restart,
    [PROTO_CMD_SLOT_REPLACE] = check_slot_replace,
    [PROTO_CMD_TOP] = check_top,
};

static int check_command(const struct proto_command *cmd, const json_t *args, char *err,
                         size_t errlen) {
  const char *name = json_string_value(json_object_get(args, "name"));

  /* Every command's "name" is a slot name; catch typos before the daemon does. */
  if (name != NULL && !proto_valid_slot_name(name))
    return usage_err(err, errlen, "\"%s\" is not a slot name: use 1 to %d of A-Z a-z 0-9 _ -", name,
                     PROTO_SLOT_NAME_MAX);
  return extra_checks[cmd->id] != NULL ? extra_checks[cmd->id](args, err, errlen) : 0;
}

/* Handles a global option at argv[*i]; returns 1 if it was one, 0 if not, -EINVAL on error. */
static int global_option(int argc, char *const argv[], int *i, const char *opt, const char *value,
                         struct ctl_args *a, int *help, int *version, char *err, size_t errlen) {
  if (strcmp(opt, "--json") == 0) {
    if (value != NULL)
      return usage_err(err, errlen, "--json takes no value");
    a->json = 1;
    return 1;
  }
  if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
    *help = 1;
    return 1;
  }
  if (strcmp(opt, "--version") == 0 || strcmp(opt, "-V") == 0) {
    *version = 1;
    return 1;
  }
  if (strcmp(opt, "--socket") != 0 && strcmp(opt, "--timeout") != 0)
    return 0;
  if (value == NULL) {
    if (*i + 1 >= argc)
      return usage_err(err, errlen, "%s needs a value (%s)", opt,
                       opt[2] == 's' ? "PATH" : "SECONDS");
    value = argv[++*i];
  }
  if (strcmp(opt, "--socket") == 0) {
    if (value[0] == '\0')
      return usage_err(err, errlen, "--socket needs a path, not an empty string");
    a->socket = value;
    return 1;
  }
  if (parse_double(value, &a->timeout_s) != 0 || a->timeout_s <= 0 || a->timeout_s > 86400)
    return usage_err(err, errlen, "--timeout expects seconds above 0 (up to 86400), not \"%s\"",
                     value);
  return 1;
}

/* Handles one of the command's own options; same returns as global_option. */
static int command_option(int argc, char *const argv[], int *i, const char *opt, const char *value,
                          const struct proto_command *cmd, json_t *args, char *err, size_t errlen) {
  char name[64], spoken_cmd[CMD_NAME_MAX];
  const struct proto_arg *a;
  json_t *v;

  if (strncmp(opt, "--", 2) != 0 || strlen(opt + 2) >= sizeof(name))
    return 0;
  snprintf(name, sizeof(name), "%s", opt + 2);
  for (char *p = name; *p; p++)
    if (*p == '-')
      *p = '_';
  a = proto_find_arg(cmd, name);
  if (a == NULL || a->positional)
    return 0;
  spoken(cmd->name, spoken_cmd, sizeof(spoken_cmd));
  if (json_object_get(args, a->name) != NULL)
    return usage_err(err, errlen, "%s given twice for %s", opt, spoken_cmd);
  if (a->type == PROTO_T_BOOL && value == NULL) {
    v = json_true();
  } else {
    if (value == NULL) {
      if (*i + 1 >= argc)
        return usage_err(err, errlen, "%s needs a value (%s)", opt, type_metavar(a->type));
      value = argv[++*i];
    }
    v = convert(a, value, opt, err, errlen);
    if (v == NULL)
      return -EINVAL;
  }
  if (json_object_set_new(args, a->name, v) != 0)
    return usage_err(err, errlen, "out of memory");
  return 1;
}

int ctl_parse_args(int argc, char *const argv[], struct ctl_args *a, char *err, size_t errlen) {
  const char *positional[MAX_POSITIONAL];
  int npos = 0, help = 0, version = 0, end_of_options = 0, rc;
  char joined[CMD_NAME_MAX] = "";
  char shown[CMD_NAME_MAX];
  const struct proto_command *cmd = NULL, *tentative = NULL;
  json_t *args = NULL;

  memset(a, 0, sizeof(*a));
  a->timeout_s = CTL_DEFAULT_TIMEOUT_S;
  args = json_object();
  if (args == NULL)
    return usage_err(err, errlen, "out of memory");

  for (int i = 1; i < argc; i++) {
    const char *t = argv[i];
    /* "-6" is a value (a parameter setting), not an option. */
    int is_option = t[0] == '-' && t[1] != '\0' && !(t[1] >= '0' && t[1] <= '9') && t[1] != '.';
    if (!end_of_options && is_option) {
      char opt[64];
      const char *eq = strchr(t, '=');
      const char *value = NULL;
      if (strcmp(t, "--") == 0) {
        end_of_options = 1;
        continue;
      }
      if (eq != NULL && t[1] == '-') {
        snprintf(opt, sizeof(opt), "%.*s", (int)(eq - t), t);
        value = eq + 1;
      } else {
        snprintf(opt, sizeof(opt), "%s", t);
      }
      /* An option ends the command words: "stats --json" is the command "stats". */
      if (cmd == NULL && tentative != NULL)
        cmd = tentative;
      rc = cmd != NULL ? command_option(argc, argv, &i, opt, value, cmd, args, err, errlen) : 0;
      if (rc == 0)
        rc = global_option(argc, argv, &i, opt, value, a, &help, &version, err, errlen);
      if (rc < 0)
        goto fail;
      if (rc == 0) {
        if (cmd != NULL) {
          spoken(cmd->name, shown, sizeof(shown));
          rc = usage_err(err, errlen, "unknown option %s for %s; see `runwayctl %s --help`", opt,
                         shown, shown);
        } else {
          rc = usage_err(err, errlen, "unknown option %s", opt);
        }
        goto fail;
      }
      continue;
    }

    if (cmd == NULL && strchr(t, '.') != NULL) {
      /* One spelling on the command line: the protocol's "slot.add" is "slot add" here. */
      char words[CMD_NAME_MAX];
      spoken(t, words, sizeof(words));
      if (find_cli_command(t) != NULL)
        rc = usage_err(err, errlen, "unknown command \"%s\"; write it as \"%s\"", t, words);
      else
        rc = usage_err(err, errlen, "unknown command \"%s\"", t);
      goto fail;
    }
    if (cmd == NULL) {
      /* Command words: the longest run that names a command ("slot add"). */
      char candidate[CMD_NAME_MAX];
      int n = snprintf(candidate, sizeof(candidate), "%s%s%s", joined, joined[0] ? "." : "", t);
      int known = n > 0 && (size_t)n < sizeof(candidate) &&
                  (find_cli_command(candidate) != NULL || has_longer(candidate));
      if (known) {
        memcpy(joined, candidate, sizeof(joined));
        tentative = find_cli_command(joined);
        if (tentative != NULL && !has_longer(joined))
          cmd = tentative;
        continue;
      }
      if (tentative == NULL) {
        if (joined[0] != '\0') {
          char subs[256];
          subcommands(joined, subs, sizeof(subs));
          spoken(joined, shown, sizeof(shown));
          rc = usage_err(err, errlen, "unknown command \"%s %s\"; %s takes: %s", shown, t, shown,
                         subs);
        } else {
          rc = usage_err(err, errlen, "unknown command \"%s\"", t);
        }
        goto fail;
      }
      cmd = tentative;
    }
    if (npos >= MAX_POSITIONAL) {
      rc = usage_err(err, errlen, "too many arguments");
      goto fail;
    }
    positional[npos++] = t;
  }
  if (cmd == NULL)
    cmd = tentative;

  if (help || version) {
    a->action = help ? CTL_HELP : CTL_VERSION;
    a->command = cmd;
    json_decref(args);
    return 0;
  }
  if (cmd == NULL) {
    if (joined[0] != '\0') {
      char subs[256];
      subcommands(joined, subs, sizeof(subs));
      spoken(joined, shown, sizeof(shown));
      rc = usage_err(err, errlen, "%s needs one of: %s", shown, subs);
    } else {
      rc = usage_err(err, errlen, "no command given");
    }
    goto fail;
  }

  spoken(cmd->name, shown, sizeof(shown));
  int used = 0;
  for (const struct proto_arg *arg = cmd->args; arg->name != NULL; arg++) {
    char mv[64];
    if (!arg->positional)
      continue;
    metavar(arg->name, mv, sizeof(mv));
    if (arg->type == PROTO_T_ARRAY) {
      /* A positional array takes every remaining word, as strings: "subscribe slot fault". */
      if (used < npos) {
        json_t *list = json_array();
        if (list == NULL || json_object_set_new(args, arg->name, list) != 0) {
          rc = usage_err(err, errlen, "out of memory");
          goto fail;
        }
        for (; used < npos; used++) {
          json_t *word = json_string(positional[used]);
          if (word == NULL) {
            rc = usage_err(err, errlen, "%s \"%s\" is not valid UTF-8", mv, positional[used]);
            goto fail;
          }
          json_array_append_new(list, word);
        }
      } else if (arg->required) {
        rc = usage_err(err, errlen, "%s needs %s; usage: runwayctl %s", shown, mv, cmd->usage);
        goto fail;
      }
      continue;
    }
    if (used < npos) {
      json_t *v = convert(arg, positional[used], mv, err, errlen);
      if (v == NULL) {
        rc = -EINVAL;
        goto fail;
      }
      used++;
      if (json_object_set_new(args, arg->name, v) != 0) {
        rc = usage_err(err, errlen, "out of memory");
        goto fail;
      }
    } else if (arg->required) {
      rc = usage_err(err, errlen, "%s needs %s; usage: runwayctl %s", shown, mv, cmd->usage);
      goto fail;
    }
  }
  if (used < npos) {
    rc = usage_err(err, errlen, "unexpected argument \"%s\" for %s; usage: runwayctl %s",
                   positional[used], shown, cmd->usage);
    goto fail;
  }
  for (const struct proto_arg *arg = cmd->args; arg->name != NULL; arg++) {
    if (arg->required && !arg->positional && json_object_get(args, arg->name) == NULL) {
      char opt[64];
      option_spelling(arg->name, opt, sizeof(opt));
      rc = usage_err(err, errlen, "%s needs --%s; usage: runwayctl %s", shown, opt, cmd->usage);
      goto fail;
    }
  }
  rc = check_command(cmd, args, err, errlen);
  if (rc != 0)
    goto fail;

  a->request = json_pack("{s:i,s:s,s:o}", "id", 1, "cmd", cmd->name, "args", args);
  args = NULL; /* stolen, even on failure */
  if (a->request == NULL) {
    rc = usage_err(err, errlen, "out of memory");
    goto fail;
  }
  a->action = CTL_RUN;
  a->command = cmd;
  return 0;

fail:
  json_decref(args);
  ctl_args_free(a);
  return rc;
}

void ctl_args_free(struct ctl_args *a) {
  if (a == NULL)
    return;
  json_decref(a->request);
  a->request = NULL;
}

/* Prints "  left" padded to col, then text; a long left puts text on the next line. */
static void help_row(FILE *f, const char *left, const char *text) {
  const int col = 30;
  int n = fprintf(f, "  %s", left);
  if (n >= col - 1)
    fprintf(f, "\n%*s%s\n", col, "", text);
  else
    fprintf(f, "%*s%s\n", col - n, "", text);
}

void ctl_print_help(FILE *f) {
  fprintf(f, "Usage: runwayctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND\n\n"
             "Talks to runwayd, the runway audio engine, over its control socket.\n\n"
             "Commands:\n");
  for (int i = 0; i < PROTO_CMD_COUNT; i++)
    if (proto_commands[i].usage != NULL)
      help_row(f, proto_commands[i].usage, proto_commands[i].help);
  fprintf(f, "\nOptions:\n");
  help_row(f, "--socket PATH", "the control socket; default $RUNWAY_SOCKET, else");
  help_row(f, "", "$XDG_RUNTIME_DIR/runway/control.sock, else /run/runway/control.sock");
  help_row(f, "--json", "print the daemon's result as one JSON document (subscribe:");
  help_row(f, "", "every line from the daemon, as it comes; top: one line per refresh)");
  help_row(f, "--timeout SECONDS", "how long to wait for the answer (default 10)");
  help_row(f, "-h, --help", "this help; `runwayctl COMMAND --help` for one command");
  help_row(f, "-V, --version", "print the version");
  fprintf(f, "\nExit status: 0 ok, 1 the daemon answered with an error, 2 usage error,\n"
             "3 no daemon reachable. subscribe and top run until interrupted (SIGINT or\n"
             "SIGTERM: 0; q quits top) or until runwayd goes away (3).\n");
}

void ctl_print_command_help(FILE *f, const struct proto_command *cmd) {
  int any = 0;
  fprintf(f, "Usage: runwayctl [--socket PATH] [--json] %s\n\n%s\n",
          cmd->usage ? cmd->usage : cmd->name, cmd->help);
  for (const struct proto_arg *a = cmd->args; a->name != NULL; a++) {
    char left[96], spelled[64];
    if (!any)
      fprintf(f, "\nArguments:\n");
    any = 1;
    if (a->positional) {
      metavar(a->name, spelled, sizeof(spelled));
      snprintf(left, sizeof(left), "%s%s", spelled, a->type == PROTO_T_ARRAY ? "..." : "");
    } else {
      option_spelling(a->name, spelled, sizeof(spelled));
      snprintf(left, sizeof(left), "--%s%s%s", spelled, a->type == PROTO_T_BOOL ? "" : " ",
               type_metavar(a->type));
    }
    help_row(f, left, a->help ? a->help : "");
  }
}
