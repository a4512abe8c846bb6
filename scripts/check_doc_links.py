#!/usr/bin/python3
"""Checks that every pointer into docs/ resolves: the page exists and, when the pointer names a
section (docs/PAGE.md#ANCHOR), the page has a heading with that anchor.

    /usr/bin/python3 scripts/check_doc_links.py [ROOT]

Pointers are read from
  - source, test, bench and script files (src/, tests/, bench/, scripts/, examples/, CMake files):
    every occurrence of docs/<path>.md or docs/<path>.md#<anchor>;
  - Markdown files (README.md, docs/**/*.md): relative links [text](<path>.md#<anchor>) and
    [text](#<anchor>), resolved against the linking file's folder.
Anchors follow GitHub's rule: the heading text without Markdown markup, lowercased, characters
other than letters, digits, spaces, '-' and '_' removed, spaces turned into '-'; a repeated
heading gets -1, -2, ... Exit 0 when every pointer resolves, 1 otherwise (each broken pointer is
printed as FILE:LINE: pointer: reason).
"""
import os
import re
import sys

CODE_DIRS = ["src", "tests", "bench", "scripts", "examples"]
CODE_EXT = (".h", ".hpp", ".cpp", ".cc", ".py", ".sh", ".cmake", ".toml", ".txt", ".js", ".in")
CODE_REF = re.compile(r"docs/[A-Za-z0-9_./-]+?\.md(?:#[A-Za-z0-9_-]+)?")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def slug(text):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: keep their text
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen, out, fence = {}, set(), False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.lstrip().startswith("```"):
                    fence = not fence
                    continue
                m = None if fence else HEADING.match(line)
                if not m:
                    continue
                s = slug(m.group(2))
                n = seen.get(s, 0)
                seen[s] = n + 1
                out.add(s if n == 0 else f"{s}-{n}")
        cache[path] = out
    return cache[path]


def check(root, where, target_path, anchor, pointer, errors):
    if not os.path.isfile(target_path):
        errors.append(f"{where}: {pointer}: no such page")
    elif anchor and anchor not in anchors(target_path):
        rel = os.path.relpath(target_path, root)
        errors.append(f"{where}: {pointer}: {rel} has no section with anchor '{anchor}'")


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    errors, count = [], 0
    code_files = [os.path.join(root, "CMakeLists.txt")]
    for d in CODE_DIRS:
        for base, _, files in os.walk(os.path.join(root, d)):
            code_files += [os.path.join(base, f) for f in files if f.endswith(CODE_EXT)]
    for path in sorted(code_files):
        if not os.path.isfile(path) or path == os.path.abspath(__file__):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for no, line in enumerate(f, 1):
                for m in CODE_REF.finditer(line):
                    page, _, anchor = m.group(0).partition("#")
                    count += 1
                    check(root, f"{os.path.relpath(path, root)}:{no}", os.path.join(root, page), anchor, m.group(0),
                          errors)
    md_files = [os.path.join(root, "README.md")]
    for base, _, files in os.walk(os.path.join(root, "docs")):
        md_files += [os.path.join(base, f) for f in files if f.endswith(".md")]
    for path in sorted(md_files):
        if not os.path.isfile(path):
            continue
        fence = False
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                if line.lstrip().startswith("```"):
                    fence = not fence
                if fence:
                    continue
                for m in MD_LINK.finditer(line):
                    target = m.group(1)
                    if re.match(r"^[a-z]+:", target):
                        continue  # http:, https:, mailto:
                    page, _, anchor = target.partition("#")
                    if page and not page.endswith(".md"):
                        continue  # images and other files
                    count += 1
                    dest = os.path.normpath(os.path.join(os.path.dirname(path), page)) if page else path
                    check(root, f"{os.path.relpath(path, root)}:{no}", dest, anchor, target, errors)
    for e in errors:
        print(e)
    print(f"check_doc_links: {count} pointers, {len(errors)} broken")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
