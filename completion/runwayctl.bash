# bash completion for runwayctl                              -*- shell-script -*-
#
# Commands, their options and their arguments come from runwayctl itself
# (`runwayctl --help` and `runwayctl COMMAND --help`, printed from its command
# table), so a new command completes without a change here. Slot, plugin and
# parameter names come from the running daemon (`runwayctl --json slot list`,
# `plugins`, `param list NAME`), on the socket given on the command line if
# any; with no daemon, runwayctl fails at once and nothing is offered.

# The rows of a --help text: "TERM<TAB>DESCRIPTION" per line, for the rows of
# every section but "Options:" (commands) or of "Arguments:" only (with -v
# section=arguments).
_runwayctl_rows() {
    awk -v section="$1" '
        /^[A-Za-z][A-Za-z ]*:$/ { current = tolower(substr($0, 1, length($0) - 1)); next }
        /^  [^ ]/ {
            if (section == "" ? current == "options" : current != section)
                next
            line = substr($0, 3)
            pos = match(line, /  +/)
            if (pos > 0)
                print substr(line, 1, pos - 1) "\t" substr(line, pos + RLENGTH)
            else
                print line "\t"
        }'
}

# String values at one path of a JSON document, one per line: "slots.*.name"
# for every slot's name. Reads runwayctl --json output of any layout.
_runwayctl_json_strings() {
    awk -v want="$1" '
        function path(   p, d) {
            p = ""
            for (d = 1; d <= depth; d++)
                p = p (d > 1 ? "." : "") key[d]
            return p
        }
        # Outside strings: containers, commas and colons move the path.
        function structure(text,   i, c) {
            for (i = 1; i <= length(text); i++) {
                c = substr(text, i, 1)
                if (c == "{") { key[++depth] = ""; object[depth] = 1; expect_key = 1 }
                else if (c == "[") { key[++depth] = "*"; object[depth] = 0; expect_key = 0 }
                else if (c == "}" || c == "]") depth--
                else if (c == ",") expect_key = object[depth]
                else if (c == ":") expect_key = 0
            }
        }
        {
            # Escaped backslashes and quotes out of the way, then split at the quotes:
            # even fields are inside strings.
            gsub(/\\\\/, "\001")
            gsub(/\\"/, "\002")
            n = split($0, part, "\"")
            for (f = 1; f <= n; f++) {
                if (f % 2 == 1) {
                    structure(part[f])
                } else if (expect_key && object[depth]) {
                    key[depth] = part[f]
                } else if (path() == want) {
                    s = part[f]
                    gsub(/\001/, "\\", s)
                    gsub(/\002/, "\"", s)
                    print s
                }
            }
        }'
}

# Names from the daemon: _runwayctl_names PATH ARGS... runs runwayctl ARGS with
# the command line's own --socket.
_runwayctl_names() {
    local path=$1
    shift
    "$_runwayctl_prog" "${_runwayctl_global[@]}" --json --timeout 1 "$@" 2>/dev/null |
        _runwayctl_json_strings "$path"
}

# The words before the cursor that are neither options nor the values of the
# options named (those that take one), into _runwayctl_plain.
_runwayctl_plain_words() {
    local i word
    _runwayctl_plain=()
    for ((i = 1; i < cword; i++)); do
        word=${words[i]}
        if [[ $word == -* ]]; then
            [[ " $* " == *" $word "* ]] && ((i++))
        else
            _runwayctl_plain+=("$word")
        fi
    done
}

_runwayctl() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local _runwayctl_prog=${words[0]}
    local -a _runwayctl_global=() _runwayctl_plain=()
    local i word term text
    # The daemon asked for names is the one the command line names.
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --socket) ((i + 1 < cword)) && _runwayctl_global=(--socket "${words[i + 1]}") ;;
        --socket=*) _runwayctl_global=(--socket "${words[i]#--socket=}") ;;
        esac
    done
    case $prev in
    --socket)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --timeout) return ;;
    esac

    local help rows
    help=$("$_runwayctl_prog" --help 2>/dev/null) || return
    rows=$(_runwayctl_rows "" <<<"$help")

    # The command: the longest run of leading words that is a whole command of
    # the table ("slot add" of "slot add fx").
    _runwayctl_plain_words --socket --timeout
    local -a typed=("${_runwayctl_plain[@]}") words_of=()
    local cmd="" n=0 k
    while IFS=$'\t' read -r term _; do
        read -ra words_of <<<"$term"
        for ((k = 0; k < ${#words_of[@]} && k < ${#typed[@]}; k++)); do
            [[ ${words_of[k]} == [a-z]* && ${words_of[k]} == "${typed[k]}" ]] || break
        done
        if ((k > n)) && { ((k == ${#words_of[@]})) || [[ ${words_of[k]} != [a-z]* ]]; }; then
            n=$k
            cmd="${typed[*]:0:k}"
        fi
    done <<<"$rows"

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W '--socket --json --timeout --help --version' -- "$cur"))
            return
        fi
        # The next word of the commands that start with the words typed.
        local -a next=()
        while IFS=$'\t' read -r term _; do
            read -ra words_of <<<"$term"
            [[ "${words_of[*]:0:${#typed[@]}}" == "${typed[*]}" ]] || continue
            word=${words_of[${#typed[@]}]}
            [[ $word == [a-z]* && " ${next[*]} " != *" $word "* ]] && next+=("$word")
        done <<<"$rows"
        COMPREPLY=($(compgen -W "${next[*]}" -- "$cur"))
        return
    fi

    # The command's own arguments, from `runwayctl COMMAND --help`.
    local -a options=() value_options=() positional=()
    local events=""
    while IFS=$'\t' read -r term text; do
        read -ra words_of <<<"$term"
        if [[ ${words_of[0]} == -* ]]; then
            options+=("${words_of[0]}")
            ((${#words_of[@]} > 1)) && value_options+=("${words_of[0]}")
        else
            positional+=("${words_of[0]}")
            # "event types to receive: slot, underrun, ... (default: all)"
            if [[ ${words_of[0]} == *... && $text == *:*,* ]]; then
                events=${text#*: }
                events=${events%% (*}
                events=${events//,/ }
            fi
        fi
    done < <("$_runwayctl_prog" $cmd --help 2>/dev/null | _runwayctl_rows arguments)

    # An option's value.
    if [[ " ${value_options[*]} " == *" $prev "* ]]; then
        case $prev in
        --plugin) COMPREPLY=($(compgen -W "$(_runwayctl_names plugins.*.name plugins)" -- "$cur")) ;;
        --exec) COMPREPLY=($(compgen -c -- "$cur")) ;;
        --on-fault) COMPREPLY=($(compgen -W "silence bypass" -- "$cur")) ;;
        esac
        return
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "${options[*]} --json --help" -- "$cur"))
        return
    fi

    # A positional argument, by its place after the command words.
    _runwayctl_plain_words --socket --timeout "${value_options[@]}"
    local -a given=("${_runwayctl_plain[@]:n}")
    local at=${#given[@]} last=$((${#positional[@]} - 1))
    # The last one may be a list (EVENT...).
    if ((at > last)); then
        [[ $last -ge 0 && ${positional[last]} == *... ]] || return
        at=$last
    fi
    case ${positional[at]} in
    NAME)
        # A new slot's name is the user's to choose.
        [[ $cmd == "slot add" ]] && return
        COMPREPLY=($(compgen -W "$(_runwayctl_names slots.*.name slot list)" -- "$cur"))
        ;;
    PARAM)
        COMPREPLY=($(compgen -W "$(_runwayctl_names params.*.name param list "${given[0]}")" -- "$cur"))
        ;;
    FILE)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        ;;
    *...)
        [[ -n $events ]] && COMPREPLY=($(compgen -W "$events" -- "$cur"))
        ;;
    esac
} &&
    complete -F _runwayctl runwayctl
