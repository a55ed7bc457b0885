#!/usr/bin/env python3
"""sql-lint (reliability.md S5): SQL is never built from variables.

Flags, in the given C files:
  - any sqlite3_mprintf / sqlite3_vmprintf / sqlite3_snprintf;
  - sqlite3_exec( anywhere but daemon/store.c's exec() helper and its ROLLBACK;
  - a printf-family call (snprintf, asprintf, ...) whose format string holds an SQL keyword
    (SELECT, INSERT, UPDATE, DELETE, PRAGMA, CREATE, DROP, ALTER), unless the comment
    "sql-lint: constant" follows the call on the line where it ends (integers, or names from
    a fixed list, only).
Calls may span lines. Prints FILE:LINE: message per finding; exit 1 if any.
"""
import re
import sys

SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE|DROP|ALTER)\b")
CALL = re.compile(r"\b(\w*printf)\s*\(")
ALLOWED_EXEC = {
    "int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);",
    'sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);',
}


def call_end(text, start):
    """Index just past the ')' closing the call whose '(' is at start; strings skipped."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def lint(path):
    text = open(path, encoding="utf-8", errors="replace").read()
    found = []
    line_of = lambda pos: text.count("\n", 0, pos) + 1  # noqa: E731
    for m in re.finditer(r"sqlite3_(v?mprintf|snprintf)\s*\(", text):
        found.append((line_of(m.start()), f"{m.group(0)[:-1]}: builds SQL text"))
    for m in re.finditer(r"sqlite3_exec\s*\(", text):
        line = text[text.rfind("\n", 0, m.start()) + 1:text.find("\n", m.start())].strip()
        if not (path.endswith("daemon/store.c") and line in ALLOWED_EXEC):
            found.append((line_of(m.start()), "sqlite3_exec outside store.c's exec(): use prep() with bound parameters"))
    for m in CALL.finditer(text):
        if m.group(1).startswith("sqlite3_"):
            continue
        end = call_end(text, m.end() - 1)
        literals = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', text[m.start():end]))
        if not SQL.search(literals):
            continue
        rest = text[end:text.find("\n", end)]
        if "sql-lint: constant" not in rest:
            found.append((line_of(m.start()), f"{m.group(1)} builds SQL text (mark it 'sql-lint: constant' "
                                              "if only integers or fixed names go in)"))
    return [f"{path}:{ln}: {msg}" for ln, msg in sorted(found)]


def main():
    findings = [f for p in sys.argv[1:] for f in lint(p)]
    for f in findings:
        print(f)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
