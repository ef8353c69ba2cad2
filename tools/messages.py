"""Extract the translatable strings and update the catalogues (``make messages``), with Babel.

    .venv/bin/python tools/messages.py           # extract into newsletter/locale/messages.pot
                                                 # and update every <lang>/LC_MESSAGES/messages.po
    .venv/bin/python tools/messages.py --check   # exit 1 if the .pot is stale or a catalogue
                                                 # lacks a translation (what tests check too)

``babel.cfg`` says which files are read and how. The keywords are Babel's defaults, the ``N_``
and ``NP_`` markers of ``newsletter.i18n``, and the name of every exception class derived from
``NewsletterError``: an error's first argument is its message key, a msgid like any other.
The command line's help texts (command docstrings, options' ``help=``) are read from the click
command tree itself (``newsletter.cli.help.help_texts``), exactly as click shows them, so none
is written twice. Locations are written without line numbers, so moving code does not churn
the catalogues.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
MAPPING = ROOT / "babel.cfg"
LOCALE_DIR = ROOT / "newsletter" / "locale"
TEMPLATE = LOCALE_DIR / "messages.pot"
SOURCE_DIRS = ("newsletter", "subscribers")
PROJECT = "sunday-newsletter"
HEADER = """\
# Translations of the Sunday newsletter (English msgids). Update with `make messages`.
#"""
WIDTH = 100


def error_classes() -> set[str]:
    """The names of ``NewsletterError`` and of every class derived from it in the code."""
    bases: dict[str, set[str]] = {}
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    names = {_base_name(base) for base in node.bases}
                    bases.setdefault(node.name, set()).update(names)
    found = {"NewsletterError"}
    while True:
        more = {name for name, parents in bases.items() if parents & found} - found
        if not more:
            return found
        found |= more


def _base_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def keywords() -> dict[str, Any]:
    """Babel's keyword specification: the function names whose arguments are msgids."""
    found: dict[str, Any] = {
        **DEFAULT_KEYWORDS,
        "NP_": ((1, "c"), 2),
        "cli_ngettext": (1, 2),  # newsletter.cli.base: plural forms in the CLI's language
        "cli_pgettext": ((1, "c"), 2),
    }
    found.update(dict.fromkeys(error_classes(), (1,)))
    return found


def extract() -> Catalog:
    """Every msgid used in the code and the templates, as a template catalogue."""
    with MAPPING.open(encoding="utf-8") as mapping:
        method_map, options_map = parse_mapping_cfg(mapping, str(MAPPING))
    catalogue = Catalog(project=PROJECT, msgid_bugs_address="", header_comment=HEADER, fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords(), comment_tags=("Translators:",)
    ):
        catalogue.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    add_help_texts(catalogue)
    return catalogue


def add_help_texts(catalogue: Catalog) -> None:
    """Add the command line's ``--help`` texts, each with the command that shows it."""
    from newsletter.cli import main  # imported here: only extraction needs the command tree
    from newsletter.cli.help import help_texts

    for text in help_texts(main):
        where = text.module.replace(".", "/") + ".py"
        comment = f"`{text.command} --help`"
        catalogue.add(text.msgid, None, [(where, None)], auto_comments=[comment])


def languages() -> list[str]:
    """The languages with a catalogue under ``newsletter/locale/``."""
    return sorted(p.parent.parent.name for p in LOCALE_DIR.glob("*/LC_MESSAGES/messages.po"))


def catalogue_file(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


def read_catalogue(path: Path, language: str | None = None) -> Catalog:
    with path.open("rb") as po:
        return read_po(po, locale=language)


def render(catalogue: Catalog) -> bytes:
    """The ``.po`` text of ``catalogue``: no line numbers, wrapped at ``WIDTH``."""
    out = BytesIO()
    write_po(
        out, catalogue, width=WIDTH, include_lineno=False, ignore_obsolete=True, sort_output=False
    )
    return out.getvalue()


_VOLATILE = (b'"POT-Creation-Date:', b'"PO-Revision-Date:', b'"Generated-By:')


def _same_text(path: Path, text: bytes) -> bool:
    # The dates and the Babel version change from run to run; nothing else should.
    def body(data: bytes) -> list[bytes]:
        return [line for line in data.splitlines() if not line.startswith(_VOLATILE)]

    return path.exists() and body(path.read_bytes()) == body(text)


def write_if_changed(path: Path, text: bytes) -> bool:
    if _same_text(path, text):
        return False
    path.write_bytes(text)
    return True


def keys(catalogue: Catalog) -> set[tuple[str | None, str]]:
    """The (msgctxt, msgid) pairs of ``catalogue``, plural entries under their singular."""
    return {(m.context, _singular(m.id)) for m in catalogue if m.id}


def _singular(msgid: str | tuple[str, ...] | list[str]) -> str:
    return msgid if isinstance(msgid, str) else msgid[0]


def problems(template: Catalog, language: str) -> Iterator[str]:
    """What is wrong with ``language``'s catalogue against ``template``: a msgid missing or
    obsolete, an empty or fuzzy translation."""
    catalogue = read_catalogue(catalogue_file(language), language)
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id, context=message.context)
        name = _singular(message.id)
        if found is None:
            yield f"{language}: missing msgid {name!r}"
        elif found.fuzzy:
            yield f"{language}: fuzzy translation of {name!r}"
        elif not all(_strings(found.string)):
            yield f"{language}: empty translation of {name!r}"


def _strings(string: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if string is None:
        return [""]
    return [string] if isinstance(string, str) else list(string)


def update() -> None:
    """Extract into the ``.pot``, then merge it into every language's catalogue."""
    template = extract()
    if write_if_changed(TEMPLATE, render(template)):
        print(f"updated {TEMPLATE.relative_to(ROOT)}")
    for language in languages():
        path = catalogue_file(language)
        catalogue = read_catalogue(path, language)
        catalogue.update(template, update_header_comment=False)
        if write_if_changed(path, render(catalogue)):
            print(f"updated {path.relative_to(ROOT)}")
        for problem in problems(template, language):
            print(problem)


def check() -> int:
    """1 when the committed ``.pot`` is stale or a catalogue is incomplete, else 0."""
    template = extract()
    found = list(stale_template(template))
    for language in languages():
        found.extend(problems(template, language))
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


def stale_template(template: Catalog) -> Iterator[str]:
    """The msgids in the code but not in the committed ``.pot``, and the other way round."""
    committed = keys(read_catalogue(TEMPLATE))
    for context, msgid in sorted(keys(template) - committed, key=str):
        yield f"messages.pot lacks {msgid!r} (context {context!r}): run `make messages`"
    for context, msgid in sorted(committed - keys(template), key=str):
        yield f"messages.pot still has {msgid!r} (context {context!r}): run `make messages`"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    update()
