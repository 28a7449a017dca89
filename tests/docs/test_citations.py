#!/usr/bin/env python3
"""The docs stand alone: everything the docs, scenarios and source comments cite is in the repository.

Checks every text file of the source tree (docs, READMEs, scenarios, C++, Python, CMake):
  * no citation of material outside the repository: `../shared/...`, `shared/spec|golden|style`, or a
    "spec §N" / "spec section N" / "spec pitfall N" reference to the old external theory contract;
  * every path under docs/ that is named anywhere (`docs/theory.md`, also in code such as help texts);
  * in prose (Markdown, and the comments and docstrings of source files): every repository path that is
    named (`io/compare.cpp`, `tests/golden/`, `sim/analysis/run_metrics` for its .hpp/.cpp) exists;
  * in Markdown: every relative link exists, and its #anchor is a heading of the target page;
  * every section cited with `§N` (docs/theory.md §3.5) is a numbered heading of docs/theory.md, and
    a file other than docs/theory.md that cites sections names docs/theory.md.
CHANGELOG.md is history: it may name files that have since moved, so only its citations of outside
material and its links are checked.

Usage: test_citations.py REPO_ROOT
"""
import os
import re
import sys
import unittest

ROOT = None

# Folders that are not the project's own text: build trees, the llama.cpp checkout, VCS data.
SKIP_DIRS = {".git", "build", "out", "third_party", "__pycache__", "corpus"}
# Reference data of the golden tests (values, not prose; their README is checked), and this file (its bad
# examples).
SKIP_FILES = re.compile(r"^tests/golden/(?!README\.md$)|^tests/docs/test_citations\.py$")
TEXT_SUFFIXES = (".md", ".hpp", ".cpp", ".h", ".py", ".toml", ".txt", ".cmake", ".sh", ".csv")
HISTORY = {"CHANGELOG.md"}
# The repository's top-level folders: a word followed by one of these and a slash is a repository path.
TOP_FOLDERS = ("agents", "backends", "cmake", "docs", "io", "scenarios", "sim", "tests", "tools")
# A module named without its extension (`io/compare`, `tests/backends/openai_driver`) is one of these.
MODULE_SUFFIXES = (".hpp", ".cpp", ".h", ".py")

OUTSIDE = [
    (re.compile(r"\.\./shared\b"), "a path outside the repository (../shared)"),
    (re.compile(r"(?<![\w/.-])shared/(?:spec|golden|style)\b"), "the external shared/ folder"),
    (re.compile(r"\b[Ss]pec(?:ification)?(?:\s*§|\s+(?:section|pitfall)\b|\s+\d)"),
     'a "spec" citation (cite docs/theory.md §N instead)'),
]
DOCS_PATH = re.compile(r"(?<![\w./-])(docs/[\w./-]*[\w])")
# A repository path: not part of a longer path or an identifier (`foo/io/x`, `a.io/x`, `$HOME/sim/x`);
# a path with a placeholder or a pattern in it (`tests/agents/test_<kind>.cpp`, `sim/theory/*.hpp`) is
# not checked, so the match must not stop at one of <{*$.
REPO_PATH = re.compile(r"(?<![\w./$@<>{}:-])((?:%s)/[\w./+-]*)(?![<{*$\w])" % "|".join(TOP_FOLDERS))
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
CPP_SUFFIXES = (".hpp", ".cpp", ".h")


def source_files(root):
    """Repository-relative paths of the project's text files."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build"))
        for name in sorted(filenames):
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if (name.endswith(TEXT_SUFFIXES) or name == "CMakeLists.txt") and not SKIP_FILES.search(rel):
                yield rel


def theory_sections(text):
    """Section numbers of the numbered headings of docs/theory.md ("1", "3.5", ...)."""
    return set(HEADING.findall(text))


def slug(heading):
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors_of(text):
    """The anchors of a Markdown page's headings (repeated headings get -1, -2, ... as on GitHub)."""
    out, seen, fenced = set(), {}, False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else MD_HEADING.match(line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return out


def prose_lines(rel, text):
    """(line number, text) of the prose of a file: all of a Markdown page, the comments and docstrings
    of a source file (its code may name paths on purpose, e.g. files a test expects to be missing)."""
    lines = list(enumerate(text.splitlines(), start=1))
    if rel.endswith(".md"):
        return lines
    out = []
    if rel.endswith(CPP_SUFFIXES):
        block = False
        for number, line in lines:
            if block or line.lstrip().startswith("/*"):
                out.append((number, line))
                block = "*/" not in line
            elif "//" in line:
                out.append((number, line[line.index("//"):]))
        return out
    string = None  # inside a triple-quoted Python string: "doc" (starts a line) or "data" (a literal)
    for number, line in lines:
        quotes = line.count('"""') + line.count("'''") if rel.endswith(".py") else 0
        if string is None and quotes:
            kind = "doc" if line.lstrip().startswith(('"""', "'''", 'r"""')) else "data"
            if kind == "doc":
                out.append((number, line))
            if quotes % 2 == 1:
                string = kind
            continue
        if string is not None:
            if string == "doc":
                out.append((number, line))
            if quotes % 2 == 1:
                string = None
            continue
        if "#" in line:
            out.append((number, line[line.index("#"):]))
    return out


def path_exists(root, path):
    full = os.path.join(root, path)
    if os.path.exists(full):
        return True
    return "." not in os.path.basename(path) and any(os.path.exists(full + s) for s in MODULE_SUFFIXES)


def problems_in(rel, text, root, sections):
    """Every problem of one file, as 'FILE:LINE: what'."""
    out = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        where = f"{rel}:{number}"
        for pattern, what in OUTSIDE:
            for m in pattern.finditer(line):
                out.append(f"{where}: {what}: {m.group(0)!r}")
        for m in DOCS_PATH.finditer(line):
            path = m.group(1).rstrip(".")
            if not os.path.exists(os.path.join(root, path)):
                out.append(f"{where}: names {path}, which does not exist")
        if rel.endswith(".md"):
            for m in MD_LINK.finditer(line):
                out += link_problems(where, rel, m.group(1), text, root)
        for m in SECTION.finditer(line):
            if m.group(1) not in sections:
                out.append(f"{where}: cites §{m.group(1)}, which docs/theory.md does not have")
    if rel not in HISTORY:
        for number, line in prose_lines(rel, text):
            for m in REPO_PATH.finditer(line):
                path = m.group(1).rstrip(".,;:")
                if not path.startswith("docs/") and not path_exists(root, path):
                    out.append(f"{rel}:{number}: names {path}, which does not exist")
    if rel != "docs/theory.md" and "§" in text and "theory.md" not in text:
        out.append(f"{rel}: cites sections (§) without naming docs/theory.md")
    return out


def link_problems(where, rel, link, text, root):
    """Problems of one Markdown link: a missing target, or an anchor that is no heading of the target."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", link):
        return []  # a URL
    target, _, anchor = link.partition("#")
    if target:
        resolved = os.path.normpath(os.path.join(root, os.path.dirname(rel), target))
        if not os.path.exists(resolved):
            return [f"{where}: links to {target}, which does not exist"]
        if not anchor or not resolved.endswith(".md"):
            return []
        with open(resolved, encoding="utf-8") as f:
            page = f.read()
    else:
        page = text
    if anchor and anchor not in anchors_of(page):
        return [f"{where}: links to {link}, a heading that {target or rel} does not have"]
    return []


class CheckerCanFail(unittest.TestCase):
    """The checker flags each kind of bad citation (so that a clean tree means something)."""

    SECTIONS = {"1", "3", "3.5", "4", "4.2"}

    def problems(self, rel, text):
        return problems_in(rel, text, ROOT, self.SECTIONS)

    def test_outside_paths_and_spec_citations(self):
        for bad in ("see ../shared/style.md", "from shared/golden", "in shared/spec/theory.md",
                    "(spec §4)", "Spec §3.2 worked example", "(spec section 3.4)", "(spec pitfall 1)",
                    "relative (spec 3.5)"):
            with self.subTest(bad=bad):
                self.assertTrue(self.problems("sim/x.hpp", "// docs/theory.md\n// " + bad))
        for fine in ("const ScenarioSpec& spec = specs[2];", "the spec stores the numbers", "spec->form",
                     "io/shared_helpers.hpp", "a shared/ prefix"):
            with self.subTest(fine=fine):
                self.assertEqual([p for p in self.problems("sim/x.hpp", "// " + fine) if "spec" in p
                                  or "shared" in p and "does not exist" not in p], [])

    def test_missing_docs_paths_and_links(self):
        self.assertTrue(self.problems("README.md", "see docs/no-such-page.md"))
        self.assertTrue(self.problems("sim/x.cpp", 'help("docs/no-such-page.md");'))  # code too
        self.assertTrue(self.problems("docs/a.md", "see [there](no-such-page.md)"))
        self.assertTrue(self.problems("docs/a.md", "see [there](../no-such-dir/x.md#part)"))
        self.assertEqual(self.problems("docs/a.md", "see [there](theory.md#1-market-and-wealth) and "
                                                    "docs/theory.md."), [])
        self.assertEqual(self.problems("docs/a.md", "[web](https://example.org/x) [here](#top)\n\n## Top"), [])

    def test_anchors(self):
        self.assertTrue(self.problems("docs/a.md", "[there](theory.md#no-such-heading)"))
        self.assertTrue(self.problems("docs/a.md", "[here](#nowhere)\n## Somewhere"))
        self.assertEqual(self.problems("docs/a.md", "[here](#kind--x-the-rest-2--x)\n### `kind = \"x\"`: the "
                                                    "rest (2 × x)"), [])
        self.assertEqual(anchors_of("## A\n## A\n```\n## not a heading\n```\n"), {"a", "a-1"})

    def test_repository_paths_in_prose(self):
        for bad in ("see io/no_such_file.cpp", "`tests/tools/test_nothing.py` runs it", "in sim/nowhere/",
                    "`io/no_such_module` reads it", "(agents/gone.hpp)."):
            with self.subTest(bad=bad):
                self.assertTrue(self.problems("docs/a.md", bad))
                self.assertTrue(self.problems("sim/x.hpp", "int x;  // " + bad))
                self.assertTrue(self.problems("tools/x.py", "x = 1  # " + bad))
                self.assertTrue(self.problems("tools/x.py", '"""Usage.\n\n' + bad + '\n"""\nx = 1\n'))
                self.assertTrue(self.problems("scenarios/x.toml", "# " + bad))
                self.assertTrue(self.problems("sim/CMakeLists.txt", "# " + bad))
                self.assertEqual(self.problems("CHANGELOG.md", bad), [])  # history
        for fine in ("see io/compare.cpp and `tests/golden/`", "`io/compare` reads it", "sim/analysis/run_metrics",
                     "`tests/agents/test_<kind>_agent.cpp`", "sim/theory/*.hpp", "build/ci/tests/io/x.h5",
                     "$OUT/io/result.h5", "`tools/bench/bench_theory` (built)", "herdsim::io/x"):
            with self.subTest(fine=fine):
                self.assertEqual(self.problems("docs/a.md", fine), [])
        # Code is not prose: a test may name a file that must not exist.
        self.assertEqual(self.problems("tests/x.cpp", 'run("scenarios/missing.toml");'), [])
        self.assertEqual(self.problems("tests/x.py", 'run("scenarios/missing.toml")'), [])
        self.assertEqual(self.problems("tests/CMakeLists.txt", "add_executable(t io/test_x.cpp)"), [])

    def test_sections(self):
        self.assertTrue(self.problems("sim/x.hpp", "// docs/theory.md §9.9"))
        self.assertTrue(self.problems("sim/x.hpp", "// see §3.5"))  # no docs/theory.md named
        self.assertEqual(self.problems("sim/x.hpp", "// docs/theory.md §3.5 and §4.2"), [])


class RepositoryCitations(unittest.TestCase):
    def test_theory_has_numbered_sections(self):
        with open(os.path.join(ROOT, "docs", "theory.md"), encoding="utf-8") as f:
            sections = theory_sections(f.read())
        for needed in ("1", "1.3", "2", "3.1", "3.2", "3.3", "3.4", "3.5", "4.1", "4.6", "5", "6.1", "6.2"):
            self.assertIn(needed, sections)

    def test_every_citation_points_inside_the_repository(self):
        with open(os.path.join(ROOT, "docs", "theory.md"), encoding="utf-8") as f:
            sections = theory_sections(f.read())
        problems = []
        files = 0
        section_citations = 0
        paths_named = 0
        for rel in source_files(ROOT):
            with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
                text = f.read()
            files += 1
            if rel != "docs/theory.md":
                section_citations += len(SECTION.findall(text))
            if rel not in HISTORY:
                paths_named += sum(len(REPO_PATH.findall(line)) for _, line in prose_lines(rel, text))
            problems += problems_in(rel, text, ROOT, sections)
        # The walk reached the tree (a wrong root would pass vacuously).
        self.assertGreater(files, 100)
        self.assertGreater(section_citations, 20)
        self.assertGreater(paths_named, 300)
        self.assertEqual(problems, [], "\n" + "\n".join(problems))


if __name__ == "__main__":
    ROOT = os.path.abspath(sys.argv[1])
    unittest.main(argv=sys.argv[:1] + sys.argv[2:])
