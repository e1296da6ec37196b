#!/usr/bin/python3
"""Write the manual pages that have a markdown source, so that they
cannot drift from it:

  postern.conf(5)     docs/CONFIG.md (every section, its directive
                      tables) and the policy modules' sections of
                      docs/POLICY.md
  postern-modules(7)  docs/PLUGINS.md, for plugin authors

    docs/man/mkman.py            write both into docs/man/ (make man)
    docs/man/mkman.py --check    are they current? (the tests)

--check also reads the directive tables of the C sources (core/*/*.c,
modules/) and fails, naming them, when a directive the server knows is
not in postern.conf(5): a new directive needs its line in
docs/CONFIG.md (or docs/POLICY.md) before the page can be made again.
Only Python's standard library; the generated pages are committed, so a
build never needs Python.
"""

import glob
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MAN = os.path.join(ROOT, "docs", "man")
PAGE = os.path.join(MAN, "postern.conf.5")
MODULES_PAGE = os.path.join(MAN, "postern-modules.7")
# from docs/POLICY.md: the modules' own sections
POLICY_SECTIONS = ("policy_relay", "policy_recipients", "policy_access",
                   "policy_limits", "policy_dnsbl", "policy_greylist")


# a list item's first line: "- text" or "1. text"
ITEM = re.compile(r"^(- |\d+\. )")


def inline(text):
    """Markdown inline text to roff: escapes, `code` and **strong** in
    bold, [links](x) as their text."""
    text = text.replace("\\|", "|")
    text = text.replace("\\", "\\e")
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", text)
    text = text.replace("--", "\\-\\-")
    return text


def line_out(out, text):
    """A text line; one that would start with . or ' is protected."""
    if text[:1] in (".", "'"):
        text = "\\&" + text
    out.append(text)


def cells(row):
    row = row.strip().strip("|")
    parts = re.split(r"(?<!\\)\|", row)
    return [p.strip() for p in parts]


def table(out, rows):
    head = [c.lower() for c in cells(rows[0])]
    for row in rows[2:]:
        c = cells(row)
        out.append(".TP")
        line_out(out, inline(c[0]))
        if head[:3] == ["directive", "default", "meaning"]:
            default = c[1] if len(c) > 1 else ""
            meaning = c[2] if len(c) > 2 else ""
            if default:
                line_out(out, "Default: " + inline(default) + ".")
                out.append(".br")
            line_out(out, inline(meaning))
        else:
            rest = ["%s: %s" % (h, v) for h, v in zip(head[1:], c[1:]) if v]
            line_out(out, inline("; ".join(rest)))


def markdown(out, lines):
    """Paragraphs, indented code blocks and tables; headings give .SS."""
    para, i = [], 0

    def flush():
        m = ITEM.match(para[0]) if para else None
        if m:
            # a list item: a hanging bullet or number
            mark = m.group(1).strip()
            out.append(".IP \\(bu 2" if mark == "-" else ".IP %s 4" % mark)
            line_out(out, inline(" ".join(para)[len(m.group(1)):]))
            del para[:]
        elif para:
            # joined: `code` may go over a line break
            out.append(".PP")
            line_out(out, inline(" ".join(para)))
            del para[:]

    while i < len(lines):
        ln = lines[i].rstrip("\n")
        if ln.startswith("```"):
            flush()
            out += [".PP", ".RS", ".nf"]
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                line_out(out, lines[i].rstrip("\n").replace("\\", "\\e"))
                i += 1
            out += [".fi", ".RE"]
            i += 1
            continue
        if ITEM.match(ln) or (ln.startswith("  ") and para
                              and ITEM.match(para[0])):
            if ITEM.match(ln):
                flush()
            para.append(ln.strip())
            i += 1
            continue
        if ln.startswith("|"):
            flush()
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i].rstrip("\n"))
                i += 1
            table(out, rows)
            continue
        if ln.startswith("    ") and not para:
            flush()
            out.append(".PP")
            out.append(".RS")
            out.append(".nf")
            while i < len(lines) and (lines[i].startswith("    ")
                                      or lines[i].strip() == ""):
                if lines[i].strip() == "" and (
                        i + 1 >= len(lines)
                        or not lines[i + 1].startswith("    ")):
                    break
                line_out(out, lines[i].rstrip("\n")[4:].replace("\\", "\\e"))
                i += 1
            out.append(".fi")
            out.append(".RE")
            continue
        if ln.startswith("#"):
            flush()
            out.append(".SS " + inline(ln.lstrip("#").strip()))
        elif ln.strip() == "":
            flush()
        else:
            para.append(ln.strip())
        i += 1
    flush()


def sections(path):
    """[(title, lines)] of a markdown file's ## sections; the text
    before the first is under title None."""
    out, title, cur = [], None, []
    with open(path, encoding="utf-8") as f:
        for ln in f:
            if ln.startswith("## "):
                out.append((title, cur))
                title, cur = ln[3:].strip(), []
            elif ln.startswith("# "):
                continue
            else:
                cur.append(ln)
    out.append((title, cur))
    return out


HEAD = r""".\" postern.conf.5 -- generated by docs/man/mkman.py from
.\" docs/CONFIG.md and docs/POLICY.md: edit those, then "make man".
.TH POSTERN.CONF 5 "" "Postern" "File Formats Manual"
.ad l
.SH NAME
postern.conf \- configuration file of the Postern SMTP server
.SH SYNOPSIS
.B /etc/postern/postern.conf
.SH DESCRIPTION
.B postern
reads its configuration from
.I /etc/postern/postern.conf
(or the file of
.BR "postern \-c" ),
checks it with
.B postern \-t
and prints the effective one, defaults included, with
.BR "postern \-T" .
A reload
.RB ( "systemctl reload postern" ,
.BR "postern \-s reload" ,
or SIGHUP) reads it again; a configuration with an error is refused and
the running one stays.
"""

TAIL = r""".SH FILES
.TP
.I /etc/postern/postern.conf
the configuration
.TP
.I /etc/postern/tls/
the certificate and key the installed configuration offers for STARTTLS
.TP
.I /etc/postern/policy/
the examples' rule and recipient files
.TP
.I /usr/lib/postern/modules/
the modules for
.B load_module
.TP
.I /var/spool/postern/
the spool
.SH SEE ALSO
.BR postern (8),
.BR postern\-send (1),
.BR postern\-sendmail (8)
"""


def generate():
    out = HEAD.rstrip("\n").split("\n")
    for title, lines in sections(os.path.join(ROOT, "docs", "CONFIG.md")):
        if title is None:
            out.append(".SH SYNTAX")
        else:
            out.append(".SH " + inline(title).upper())
        markdown(out, lines)
    out.append(".SH POLICY MODULES")
    out.append(".PP")
    out.append("The order of the policy hooks, their replies and their "
               "costs are in docs/POLICY.md of the source tree.")
    for title, lines in sections(os.path.join(ROOT, "docs", "POLICY.md")):
        if title in POLICY_SECTIONS:
            out.append(".SS " + title)
            markdown(out, lines)
    out += TAIL.rstrip("\n").split("\n")
    return "\n".join(out) + "\n"


MODULES_HEAD = r""".\" postern-modules.7 -- generated by docs/man/mkman.py from
.\" docs/PLUGINS.md: edit that, then "make man".
.TH POSTERN-MODULES 7 "" "Postern" "Miscellaneous Information Manual"
.ad l
.SH NAME
postern-modules \- writing modules and plugins for the Postern SMTP server
.SH SYNOPSIS
.nf
.B #include <postern/module.h>
.PP
.B cc $(pkg\-config \-\-cflags postern) \-fPIC \-shared \-fvisibility=hidden \e
.B "    \-o NAME.so NAME.c"
.fi
.SH DESCRIPTION
"""

MODULES_TAIL = r""".SH FILES
.TP
.I /usr/include/postern/module.h
the plugin API, the one header a module includes
.TP
.I /usr/lib/pkgconfig/postern.pc
.B pkg\-config \-\-cflags postern
gives its directory;
.B pkg\-config \-\-variable=moduledir postern
the directory of the installed modules
.TP
.I /usr/lib/postern/modules/
the modules built with the server
.SH SEE ALSO
.BR postern (8),
.BR postern.conf (5)
"""


def generate_modules():
    out = MODULES_HEAD.rstrip("\n").split("\n")
    for title, lines in sections(os.path.join(ROOT, "docs", "PLUGINS.md")):
        if title is not None:
            out.append(".SH " + inline(title).upper())
        markdown(out, lines)
    out += MODULES_TAIL.rstrip("\n").split("\n")
    return "\n".join(out) + "\n"


def directives():
    """Every directive name in the command tables of the C sources."""
    names = set()
    files = (glob.glob(os.path.join(ROOT, "core", "*", "*.c"))
             + glob.glob(os.path.join(ROOT, "modules", "*.c"))
             + glob.glob(os.path.join(ROOT, "modules", "*", "*.c")))
    for f in files:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        names.update(re.findall(r'\{\s*"([a-z0-9_]+)",\s*PST_CONF_', text))
    return names


def check():
    page = generate()
    bad = 0
    for path, text in ((PAGE, page), (MODULES_PAGE, generate_modules())):
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                print("%s is not what docs/man/mkman.py makes from the"
                      " docs: run make man" % path, file=sys.stderr)
                bad = 1
    documented = set(re.findall(r"\\fB([a-z0-9_]+)", page))
    documented |= set(re.findall(r"(?m)^\.TP\n\\?&?([a-z0-9_]+)", page))
    for name in sorted(directives() - documented):
        print("directive %s is not in postern.conf(5): give it a line in"
              " docs/CONFIG.md or docs/POLICY.md" % name, file=sys.stderr)
        bad = 1
    return bad


def write(path, text):
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    write(PAGE, generate())
    write(MODULES_PAGE, generate_modules())
