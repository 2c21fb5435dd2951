# Fills a man page template with what a program's --help prints, so that the
# page follows the option and command tables the program is built from.
#
#   awk -v prog=PATH -v name=NAME -v version=X.Y.Z [-v bindir=DIR] -f man_from_help.awk \
#       TEMPLATE > PAGE
#
# The template is roff with these lines of their own:
#   @SYNOPSIS@  the usage lines of `PROG --help`
#   @OPTIONS@   the rows of its "Options:" section (or of no section at all)
#   @COMMANDS@  the rows of every other section, each command followed by the
#               "Arguments:" rows of `PROG COMMAND... --help`
# and @VERSION@ and @BINDIR@ (-v bindir=DIR) anywhere. `name` is the program's
# name as installed (PROG may be a path into the build tree).
#
# The help text is read as --help texts are written: a "usage:" line (more
# forms of the command on lines starting with its name, or the line continued
# on indented lines starting with an option or a bracket), section headers
# ending in ':' at the margin, rows indented by two spaces with the term and
# its description separated by two or more spaces, descriptions continued on
# lines indented further. Anything else (paragraphs) is left to the template's
# prose.

# ---- roff -------------------------------------------------------------------------

# Text as roff: backslashes and hyphen-minus escaped (options stay ASCII when copied),
# `quoted` words set in bold.
function roff_text(s,    out, i, c, bold) {
  out = ""
  bold = 0
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "\\")
      out = out "\\e"
    else if (c == "-")
      out = out "\\-"
    else if (c == "`") {
      out = out (bold ? "\\fR" : "\\fB")
      bold = !bold
    } else
      out = out c
  }
  if (bold)
    out = out "\\fR"
  # A line starting with . or ' would be read as a request.
  if (out ~ /^[.']/)
    out = "\\&" out
  return out
}

# A synopsis or a term: option and command words bold, metavariables
# (upper case: NAME, PATH, [EVENT...]) italic, brackets and bars roman.
function roff_term(s,    out, word, c, i, n) {
  out = ""
  n = length(s)
  i = 1
  while (i <= n) {
    c = substr(s, i, 1)
    if (c ~ /[A-Za-z0-9_$.-]/) {
      word = ""
      while (i <= n && substr(s, i, 1) ~ /[A-Za-z0-9_$.=-]/) {
        word = word substr(s, i, 1)
        i++
      }
      if (word ~ /^[A-Z][A-Z0-9_]*(\.\.\.)?$/ || word == "..." || word == "options")
        out = out "\\fI" roff_text(word) "\\fR"
      else
        out = out "\\fB" roff_text(word) "\\fR"
    } else {
      out = out roff_text(c)
      i++
    }
  }
  if (out ~ /^[.']/)
    out = "\\&" out
  return out
}

# ---- reading --help ------------------------------------------------------------------

# Runs `cmd` and parses its output into rows: R_n rows with R_sec[i] (the section
# header in lower case, "" before any), R_term[i], R_text[i]; U_n usage lines U[i].
# Fails (exit 1) when the command prints no usage line, or no rows when need_rows.
function read_help(cmd, base, need_rows,    line, rc, section, in_usage, in_row, t, pos) {
  R_n = 0
  U_n = 0
  section = ""
  in_usage = 0
  in_row = 0
  while ((rc = (cmd | getline line)) > 0) {
    sub(/[ \t]+$/, "", line)
    if (line ~ /^[Uu]sage: /) {
      sub(/^[Uu]sage: +/, "", line)
      U[++U_n] = line
      in_usage = 1
      in_row = 0
      continue
    }
    if (in_usage && line ~ /^ +[^ ]/) {
      t = line
      sub(/^ +/, "", t)
      # Another form of the command, or the current one continued.
      if (index(t, base) == 1) {
        U[++U_n] = t
        continue
      }
      if (t ~ /^[[(-]/) {
        U[U_n] = U[U_n] " " t
        continue
      }
    }
    in_usage = 0
    if (line == "") {
      in_row = 0
      continue
    }
    if (line ~ /^[A-Za-z][A-Za-z ]*:$/) {
      section = tolower(substr(line, 1, length(line) - 1))
      in_row = 0
      continue
    }
    if (line ~ /^  [^ ]/) {
      t = substr(line, 3)
      pos = match(t, /  +/)
      R_n++
      R_sec[R_n] = section
      if (pos > 0) {
        R_term[R_n] = substr(t, 1, pos - 1)
        R_text[R_n] = substr(t, pos + RLENGTH)
      } else {
        R_term[R_n] = t
        R_text[R_n] = ""
      }
      in_row = 1
      continue
    }
    if (in_row && line ~ /^   +[^ ]/) {
      t = line
      sub(/^ +/, "", t)
      R_text[R_n] = R_text[R_n] (R_text[R_n] == "" ? "" : " ") t
      continue
    }
    in_row = 0 # a paragraph
  }
  close(cmd)
  if (rc < 0 || U_n == 0 || (need_rows && R_n == 0)) {
    printf "man_from_help.awk: cannot read the help of %s (no usage line or no rows)\n", cmd > "/dev/stderr"
    exit 1
  }
}

# s with every `from` replaced by `to`, taken literally (gsub would read & and \ in it).
function replace_all(s, from, to,    out, pos) {
  out = ""
  while ((pos = index(s, from)) > 0) {
    out = out substr(s, 1, pos - 1) to
    s = substr(s, pos + length(from))
  }
  return out s
}

function is_options(sec) {
  return sec == "" || sec == "options"
}

function shell_quote(s) {
  gsub(/'/, "'\\''", s)
  return "'" s "'"
}

# ---- the parts -----------------------------------------------------------------------

function emit_synopsis(    i, line) {
  read_help(shell_quote(prog) " --help", name, 0)
  for (i = 1; i <= U_n; i++) {
    line = U[i]
    # "prog --list [--json]     list the plugins": the description is not synopsis.
    sub(/   +.*$/, "", line)
    # The usage line names the program as it was run; the page names it as installed.
    sub(/^[^ ]+/, name, line)
    if (i > 1)
      print ".br"
    print roff_term(line)
  }
}

function emit_options(    i, n) {
  read_help(shell_quote(prog) " --help", name, 1)
  n = 0
  for (i = 1; i <= R_n; i++) {
    if (!is_options(R_sec[i]))
      continue
    print ".TP"
    print roff_term(R_term[i])
    print roff_text(R_text[i])
    n++
  }
  if (n == 0) {
    print "man_from_help.awk: no options in the help of " prog > "/dev/stderr"
    exit 1
  }
}

function emit_commands(    i, j, n, sections, nsec, words, w, sec_of, term, text, k, nw, cmd) {
  read_help(shell_quote(prog) " --help", name, 1)
  # Copied first: read_help runs again for every command.
  n = 0
  nsec = 0
  for (i = 1; i <= R_n; i++) {
    if (is_options(R_sec[i]))
      continue
    n++
    sec_of[n] = R_sec[i]
    term[n] = R_term[i]
    text[n] = R_text[i]
    if (n == 1 || sec_of[n] != sec_of[n - 1])
      nsec++
  }
  if (n == 0) {
    print "man_from_help.awk: no commands in the help of " prog > "/dev/stderr"
    exit 1
  }
  for (i = 1; i <= n; i++) {
    if (nsec > 1 && (i == 1 || sec_of[i] != sec_of[i - 1])) {
      print ".SS " roff_text(toupper(substr(sec_of[i], 1, 1)) substr(sec_of[i], 2))
    }
    print ".TP"
    print roff_term(term[i])
    print roff_text(text[i])
    # The command's words ("slot add" of "slot add NAME --plugin P"), then its own help.
    nw = split(term[i], w, " ")
    cmd = shell_quote(prog)
    for (k = 1; k <= nw && w[k] ~ /^[a-z][a-z-]*$/; k++)
      cmd = cmd " " w[k]
    read_help(cmd " --help", name, 0)
    words = 0
    for (j = 1; j <= R_n; j++) {
      if (R_sec[j] != "arguments")
        continue
      if (words++ == 0)
        print ".RS"
      print ".TP"
      print roff_term(R_term[j])
      print roff_text(R_text[j])
    }
    if (words > 0)
      print ".RE"
  }
}

# ---- the template --------------------------------------------------------------------

function need_prog() {
  if (prog == "" || name == "") {
    print "man_from_help.awk: " FILENAME " reads a --help: give -v prog=PATH -v name=NAME" > "/dev/stderr"
    exit 2
  }
}

BEGIN {
  if (version == "") {
    print "usage: awk -v version=X [-v prog=PATH -v name=NAME] [-v bindir=DIR] -f man_from_help.awk TEMPLATE" > "/dev/stderr"
    exit 2
  }
}

$0 == "@SYNOPSIS@" { need_prog(); emit_synopsis(); next }
$0 == "@OPTIONS@" { need_prog(); emit_options(); next }
$0 == "@COMMANDS@" { need_prog(); emit_commands(); next }
{
  print replace_all(replace_all($0, "@VERSION@", roff_text(version)), "@BINDIR@", roff_text(bindir))
}
