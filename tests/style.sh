#!/bin/sh
#
# style.sh -- the mechanical part of the code style (docs: STYLE.md,
# recommendation 22): no line over 80 columns, no tabs, no trailing
# spaces in the C sources of core/, modules/ and plugins/.  Prints
# file:line: problem for every violation and exits 1 if there was one.
#
# Run from the top of the tree (make style, make unit).  Columns are
# counted in characters, not bytes, so UTF-8 in comments is fine.
#
# Then the layers of core/ (docs/ARCHITECTURE.md, "Layers"): a folder
# per layer, in the order of LAYERS, bottom first.  A file may include
# only headers of its own layer and of the layers below it; no two
# headers share a name (every folder is on the include path); the
# headers include each other in no circle.  core/postern_module.h, the
# public interface, is below every layer.  When objects of the core are
# built (objs/core/LAYER/*.o), the same direction is checked on the
# symbols they use, so that a prototype written into a lower file
# cannot hide a call upwards; SYMBOL_EXCEPTIONS lists the references
# that are meant (each with its reason).

cd "$(dirname "$0")/.." || exit 2

files=$(find core modules plugins tests/harness -type f \( -name '*.c' -o -name '*.h' \) \
        2>/dev/null | LC_ALL=C sort)

[ -n "$files" ] || exit 0

rc=0

# shellcheck disable=SC2086
LC_ALL=C awk '
    {
        line = $0
        # drop UTF-8 continuation bytes so that length() counts characters
        gsub(/[\200-\277]/, "", line)
        if (length(line) > 80) {
            printf "%s:%d: line is %d columns (max 80)\n",
                   FILENAME, FNR, length(line)
            bad = 1
        }
        if (index($0, "\t") > 0) {
            printf "%s:%d: tab character\n", FILENAME, FNR
            bad = 1
        }
        if ($0 ~ /[ \t\r]$/) {
            printf "%s:%d: trailing whitespace\n", FILENAME, FNR
            bad = 1
        }
    }
    END { exit bad }
' $files || rc=1

# bottom first; core/send/ (postern-send, postern-sendmail) and main/
# (the postern program) are programs on top of the layers
LAYERS="base event tls dns redis spool process smtp queue send main"

# symbol LAYER-FROM LAYER-TO: a reference upwards that is meant
#   pst_builtin_modules: the registry (base) reads the program's table
#   of built-in modules (main/pst_modules.c), as nginx's core reads the
#   generated objs/ngx_modules.c; that table is the composition of the
#   layers, so it has to sit above them
SYMBOL_EXCEPTIONS="
pst_builtin_modules base main
"

layer_files=$(find core -mindepth 2 -type f \( -name '*.c' -o -name '*.h' \) \
              2>/dev/null | LC_ALL=C sort)

# shellcheck disable=SC2086
LC_ALL=C awk -v layers="$LAYERS" '
    function rank(path,    n, p) {
        n = split(path, p, "/")
        if (n == 2) {
            return 0                    # core/postern_module.h
        }
        return (p[2] in order) ? order[p[2]] : -1
    }
    function base(path,    n, p) {
        n = split(path, p, "/")
        return p[n]
    }
    BEGIN {
        n = split(layers, l, " ")
        for (i = 1; i <= n; i++) {
            order[l[i]] = i
            name[i] = l[i]
        }
        name[0] = "the public header"
    }
    FNR == 1 {
        r = rank(FILENAME)
        if (r < 0) {
            printf "%s: in no layer (core/LAYER/ with LAYER one of: %s)\n",
                   FILENAME, layers
            bad = 1
        }
        file[++nfiles] = FILENAME
        frank[FILENAME] = r
        if (FILENAME ~ /\.h$/) {
            b = base(FILENAME)
            if (b in header) {
                printf "%s: same name as %s (every folder is on the" \
                       " include path)\n", FILENAME, header[b]
                bad = 1
            }
            header[b] = FILENAME
        }
    }
    /^[ \t]*#[ \t]*include[ \t]*"/ {
        inc = $0
        sub(/^[^"]*"/, "", inc)
        sub(/".*$/, "", inc)
        ninc++
        ifile[ninc] = FILENAME
        iline[ninc] = FNR
        iname[ninc] = base(inc)
    }
    END {
        header["postern_module.h"] = "core/postern_module.h"
        frank["core/postern_module.h"] = 0
        for (i = 1; i <= ninc; i++) {
            if (!(iname[i] in header)) {
                continue                # objs/pst_auto.h, a test file
            }
            h = header[iname[i]]
            f = ifile[i]
            if (frank[h] > frank[f]) {
                printf "%s:%d: includes %s of layer %s, above its layer" \
                       " %s\n", f, iline[i], h, name[frank[h]],
                       name[frank[f]]
                bad = 1
            }
            if (f ~ /\.h$/) {
                edge[f, ++nedge[f]] = h
            }
        }
        # no circle of includes: depth-first, grey = on the path
        for (k = 1; k <= nfiles; k++) {
            f = file[k]
            if (f !~ /\.h$/ || color[f] == 2) {
                continue
            }
            sp = 1; stack[1] = f; pos[1] = 0; color[f] = 1
            while (sp > 0) {
                u = stack[sp]
                if (pos[sp] < nedge[u]) {
                    v = edge[u, ++pos[sp]]
                    if (color[v] == 1) {
                        path = v
                        for (j = sp; j >= 1 && stack[j] != v; j--) {
                            path = stack[j] " -> " path
                        }
                        printf "%s: include circle: %s -> %s\n", v,
                               v, path
                        bad = 1
                    } else if (color[v] != 2) {
                        stack[++sp] = v; pos[sp] = 0; color[v] = 1
                    }
                } else {
                    color[u] = 2
                    sp--
                }
            }
        }
        exit bad
    }
' $layer_files || rc=1

# the same direction on the symbols of the built objects
objs=$(find objs/core -mindepth 2 -name '*.o' 2>/dev/null | LC_ALL=C sort)
if [ -n "$objs" ] && command -v nm >/dev/null; then
    # shellcheck disable=SC2086
    for o in $objs; do
        s=${o#objs/}
        [ -f "${s%.o}.c" ] || continue  # left from a file moved since
        echo "@ $o"
        nm "$o"
    done | LC_ALL=C awk -v layers="$LAYERS" -v exc="$SYMBOL_EXCEPTIONS" '
        BEGIN {
            n = split(layers, l, " ")
            for (i = 1; i <= n; i++) {
                order[l[i]] = i
            }
            n = split(exc, e, "\n")
            for (i = 1; i <= n; i++) {
                if (split(e[i], w, " ") == 3) {
                    allowed[w[1], w[2], w[3]] = 1
                }
            }
        }
        $1 == "@" {
            obj = $2
            split(obj, p, "/")
            layer = p[3]
            next
        }
        NF == 3 && $2 ~ /^[TDBRCVW]$/ {
            defl[$3] = layer
            defo[$3] = obj
            next
        }
        NF == 2 && $1 == "U" {
            nu++
            uobj[nu] = obj
            ulayer[nu] = layer
            usym[nu] = $2
        }
        END {
            for (i = 1; i <= nu; i++) {
                s = usym[i]
                if (!(s in defl)) {
                    continue            # libc, OpenSSL, ...
                }
                from = ulayer[i]
                to = defl[s]
                if (order[to] > order[from] && !allowed[s, from, to]) {
                    printf "%s: uses %s of %s (layer %s, above %s)\n",
                           uobj[i], s, defo[s], to, from
                    bad = 1
                }
            }
            exit bad
        }
    ' || rc=1
fi

exit $rc
