#!/usr/bin/env bash
# Writes the man page mien(1) to stdout: the written head ($2, tools/mien.1.head), then one
# section per command with the command's --help as the binary ($1) prints it, so the page
# always lists every command and option the binary has.
#   bash tools/make_man.sh build/mien tools/mien.1.head > build/mien.1
set -euo pipefail
bin=$1 head=$2
version=$("$bin" version | awk '{print $2}')
# roff: backslashes escaped, lines starting with . or ' protected.
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"; }
sed "s/@VERSION@/$version/" "$head"
echo '.SH COMMANDS'
"$bin" help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}' | while read -r cmd; do
  case $cmd in help|version) continue ;; esac
  echo ".SS $cmd"
  echo '.nf'
  "$bin" "$cmd" --help | esc
  echo '.fi'
  # Commands with subcommands: their usage names them as "mien CMD SUB"; each has its --help.
  # ("mien keys add ...", or "mien eval pairs|landmarks|... ...")
  { "$bin" "$cmd" --help | grep -o "mien $cmd [a-z][a-z|-]*" || true; } | awk '{print $3}' |
    tr '|' '\n' | awk '!seen[$0]++' |
    while read -r sub; do
      out=$("$bin" "$cmd" "$sub" --help 2>/dev/null) || continue
      [ -n "$out" ] || continue
      echo ".SS $cmd $sub"
      echo '.nf'
      printf '%s\n' "$out" | esc
      echo '.fi'
    done
done
cat <<'EOT'
.SS help
.nf
mien help           the list of commands (also mien \-\-help)
.fi
.SS version
.nf
mien version        print the version (also mien \-\-version)
.fi
.SH SEE ALSO
The README of the source tree: accuracy and speed measured, the C library, the HTTP service,
the Python package (python/).
EOT
