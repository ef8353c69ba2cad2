"""French catalogue. Keep entries grouped by the module or template that uses them.

To add a string: use the English text as msgid (``_("Unsubscribe")`` in Python,
``{% trans %}Unsubscribe{% endtrans %}`` or ``{{ _("Unsubscribe") }}`` in a template), then add
``"Unsubscribe": "Se désabonner"`` here. Plurals: ``"%(n)s link": ("%(n)s lien", "%(n)s liens")``.
"""

from __future__ import annotations

MESSAGES: dict[str, str | tuple[str, str]] = {
    # dates (newsletter/i18n.py)
    "January": "janvier",
    "February": "février",
    "March": "mars",
    "April": "avril",
    "May": "mai",
    "June": "juin",
    "July": "juillet",
    "August": "août",
    "September": "septembre",
    "October": "octobre",
    "November": "novembre",
    "December": "décembre",
    "Monday": "lundi",
    "Tuesday": "mardi",
    "Wednesday": "mercredi",
    "Thursday": "jeudi",
    "Friday": "vendredi",
    "Saturday": "samedi",
    "Sunday": "dimanche",
    # templates/email/base.html, digest.html, digest.txt
    "View in your browser": "Voir dans le navigateur",
    "Read the article": "Lire l’article",
    "Unsubscribe": "Se désabonner",
    "Unsubscribe:": "Se désabonner :",
    "View in your browser:": "Voir dans le navigateur :",
    "You receive this email because you subscribed to %(name)s.": (
        "Vous recevez ce message parce que vous êtes abonné·e à « %(name)s »."
    ),
    "Issue #%(number)s": "Numéro %(number)s",
    "%(num)s link": ("%(num)s lien", "%(num)s liens"),
    "Reply to this email to suggest a link.": "Répondez à ce message pour proposer un lien.",
    # newsletter/message.py
    "[Preview]": "[Aperçu]",
    # newsletter/dispatch.py (slot reasons, catch-up intro, pause notice)
    "nothing new": "rien de nouveau",
    "paused": "en pause",
    "skipped by the editor": "sauté par l’équipe éditoriale",
    "delayed to {when}": "reporté au {when}",
    "the service was down for more than {hours} h after the slot": (
        "le service était arrêté plus de {hours} h après l’heure prévue"
    ),
    "and": "et",
    "This issue catches up on the weeks of {weeks}.": "Ce numéro rattrape les semaines du {weeks}.",
    "{name}: taking a break until {until}": "{name} : pause jusqu’au {until}",
    # templates/email/notice.html, notice.txt
    "No issue until %(until)s.": "Pas de numéro avant le %(until)s.",
    "The newsletter takes a break: the next issue goes out on %(until)s.": (
        "La lettre fait une pause : le prochain numéro partira le %(until)s."
    ),
    "Links shared in the meantime are kept for that issue.": (
        "Les liens partagés d’ici là sont gardés pour ce numéro."
    ),
}
