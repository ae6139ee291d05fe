#!/usr/bin/env python3
"""Writes a regenerated section into docs/BENCHMARKS.md, for the bench scripts.

    scripts/splice-section.py HEADING SECTION_FILE BEFORE

Replaces the section whose heading line starts with HEADING (up to the next `## `
heading) by the contents of SECTION_FILE; when there is none, inserts it before the
first line starting with BEFORE, or at the end.
"""
import re
import sys

heading, section_file, before = sys.argv[1:4]
doc = open("docs/BENCHMARKS.md").read()
section = open(section_file).read()
pattern = re.compile(r"^" + re.escape(heading) + r".*?(?=^## )", re.S | re.M)
if pattern.search(doc):
    doc = pattern.sub(lambda m: section, doc, count=1)
elif before in doc:
    doc = doc.replace(before, section + before, 1)
else:
    doc += "\n" + section
open("docs/BENCHMARKS.md", "w").write(doc)
