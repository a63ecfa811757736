#!/usr/bin/env python3
"""Checks that every code reference in a Markdown file still names code.

A reference is `dir/file.go:Name` or `dir/file.go:Type.Member`, relative to
the repository root. It resolves when that file declares Name (a func,
type, var or const) or, for Type.Member, a method Member of Type or a field
Member of struct Type. `make lint` runs it on docs/architecture.md, so the
design document cannot name a function that was renamed or moved.

usage: checkrefs.py DOC [ROOT]
"""
import os
import re
import sys


def declares(src, ref):
    if '.' in ref:
        recv, name = ref.split('.', 1)
        if re.search(r'^func\s*\(\w*\s*\*?%s(?:\[[^\]]*\])?\)\s*%s\s*[\[(]' % (recv, name), src, re.M):
            return True
        m = re.search(r'^type\s+%s(?:\[[^\]]*\])?\s+struct\s*{(.*?)^}' % recv, src, re.M | re.S)
        return bool(m and re.search(r'^\s*%s\b' % name, m.group(1), re.M))
    return bool(re.search(r'^(?:func\s+%s\s*[\[(]|type\s+%s\b|(?:var|const)\s+%s\b)' % (ref, ref, ref), src, re.M)
                or re.search(r'^(?:var|const)\s*\((?:(?!^\)).)*^\s*%s\b' % ref, src, re.M | re.S))


def main():
    doc = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else '.'
    text = open(doc).read()
    refs = sorted(set(re.findall(r'((?:[\w-]+/)*\w+\.go):([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)', text)))
    refs = [r for r in refs if r[0] != 'file.go']  # the notation itself
    bad = 0
    for f, ref in refs:
        path = os.path.join(root, f)
        if not os.path.exists(path):
            print('%s: %s:%s: no such file' % (doc, f, ref))
            bad += 1
        elif not declares(open(path).read(), ref):
            print('%s: %s:%s: not declared there' % (doc, f, ref))
            bad += 1
    if bad:
        print('%s: %d of %d code references do not resolve' % (doc, bad, len(refs)))
        sys.exit(1)


if __name__ == '__main__':
    main()
