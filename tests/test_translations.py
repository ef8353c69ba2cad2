"""Translations: gettext catalogues extracted with Babel, CLDR plurals, dates and numbers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from newsletter.i18n import (
    NARROW_NBSP,
    format_date,
    format_decimal,
    format_list,
    gettext,
    ngettext,
    read_translations,
    typography,
)
from newsletter.templating import make_environment
from tools import messages


def test_every_msgid_in_code_and_templates_has_a_french_translation() -> None:
    """Each msgid Babel extracts from the code and templates is in the committed .pot and has
    a non-empty, non-fuzzy French translation (run `make messages`, then translate)."""
    template = messages.extract()
    assert list(messages.stale_template(template)) == []
    assert list(messages.problems(template, "fr")) == []


def test_error_keys_and_markers_are_extracted() -> None:
    """Extraction finds error message keys, N_() constants and status words with context."""
    found = messages.keys(messages.extract())
    assert (None, "must not be empty") in found  # InvalidInputError("must not be empty", ...)
    assert (None, "nothing new") in found  # NOTHING_NEW = N_("nothing new")
    assert ("status", "paused") in found and (None, "Unsubscribe") in found


def test_plural_rule_comes_from_the_catalogue() -> None:
    """French treats 0 and 1 as singular (CLDR, via the catalogue's Plural-Forms); English
    only 1; an unknown msgid falls back to English."""
    fr, en = ngettext("fr"), ngettext("en")
    assert [fr("%(num)s link", "%(num)s links", n) for n in (0, 1, 2)] == [
        "%(num)s lien",
        "%(num)s lien",
        "%(num)s liens",
    ]
    assert en("%(num)s link", "%(num)s links", 0) == "%(num)s links"
    assert gettext("fr")("A string nobody translated") == "A string nobody translated"
    assert gettext("en")("Unsubscribe") == "Unsubscribe"


def test_cldr_dates_numbers_and_lists() -> None:
    """Dates, decimals and lists follow CLDR in each language."""
    day = date(2026, 12, 6)
    assert format_date(day, "fr", weekday=True) == "dimanche 6 décembre 2026"
    assert format_date(day, "fr") == "6 décembre 2026"
    assert format_date(day, "en", weekday=True) == "Sunday, 6 December 2026"
    assert format_decimal(0.3, "fr") == "0,3" and format_decimal(0.25, "en", digits=2) == "0.25"
    assert format_decimal(1234.5, "fr") == f"1{chr(0x202F)}234,5"
    assert format_list(["6 sept.", "13 sept.", "20 sept."], "fr") == "6 sept., 13 sept. et 20 sept."


def test_french_typography_uses_narrow_no_break_spaces() -> None:
    """French gets a narrow no-break space before : ; ! ? » and after «, not in URLs or times."""
    nb = NARROW_NBSP
    assert typography("État: en cours", "fr") == f"État{nb}: en cours"
    assert typography("« Civic Tech » : oui !", "fr") == f"«{nb}Civic Tech{nb}»{nb}: oui{nb}!"
    assert typography("https://x.org à 18:00", "fr") == "https://x.org à 18:00"
    assert typography("HH:MM, %(host)s:%(port)s", "fr") == "HH:MM, %(host)s:%(port)s"
    assert typography("Status: done", "en") == "Status: done"


def test_environment_filters_translate_values_by_context() -> None:
    """``|tr`` reads a status word with the status context; ``_()`` and filters work."""
    env = make_environment(None, "fr", autoescape=True, strict=True)
    page = env.from_string(
        "{{ 'paused'|tr }}|{{ 'Link queued.'|tr }}|{{ _('Unsubscribe') }}|{{ 0.3|decimal }}"
        "|{{ day|full_date }}"
    )
    assert page.render(day=date(2026, 12, 6)) == (
        "suspendu|Lien ajouté.|Se désabonner|0,3|dimanche 6 décembre 2026"
    )
    assert gettext("fr")("paused") == "en pause"  # the slot reason, without context


def test_fuzzy_entries_are_not_used_and_plurals_follow_the_header(tmp_path: Path) -> None:
    """A fuzzy translation is ignored (English shows); plural forms follow Plural-Forms."""
    po = tmp_path / "messages.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: fr\\n"\n'
        '"Plural-Forms: nplurals=2; plural=(n > 1);\\n"\n'
        '"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        '#, fuzzy\nmsgid "Unsubscribe"\nmsgstr "Peut-être se désabonner"\n\n'
        'msgid "Save"\nmsgstr "Enregistrer"\n\n'
        'msgid "%(num)s link"\nmsgid_plural "%(num)s links"\n'
        'msgstr[0] "%(num)s lien"\nmsgstr[1] "%(num)s liens"\n',
        encoding="utf-8",
    )
    catalogue = read_translations(str(po), "fr")
    assert catalogue.gettext("Unsubscribe") == "Unsubscribe"
    assert catalogue.gettext("Save") == "Enregistrer"
    assert catalogue.ngettext("%(num)s link", "%(num)s links", 0) == "%(num)s lien"
    assert catalogue.ngettext("%(num)s link", "%(num)s links", 3) == "%(num)s liens"
