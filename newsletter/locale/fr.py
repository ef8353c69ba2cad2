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
    # newsletter/sending/message.py
    "[Preview]": "[Aperçu]",
    # schedule/dispatch.py, services/schedule.py (slot reasons, catch-up intro, pause notice)
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
    # subscribers engineer: public pages (templates/web/, newsletter/web/public.py,
    # archive.py) and opt-in emails (templates/email/confirm.*, welcome.*, transactional.py)
    "All issues": "Tous les numéros",
    "Archive": "Archives",
    "Back to the home page": "Retour à l’accueil",
    "Check your inbox": "Vérifiez votre boîte de réception",
    (
        "If this address can be subscribed, an email with a confirmation link "
        "is on its way. Open it and press the button to confirm."
    ): (
        "Si cette adresse peut être inscrite, un e-mail contenant un lien de "
        "confirmation est en route. Ouvrez-le et appuyez sur le bouton pour "
        "confirmer."
    ),
    "Confirm my subscription": "Confirmer mon inscription",
    "Confirm my subscription:": "Confirmer mon inscription :",
    "Confirm your subscription": "Confirmez votre inscription",
    "Confirm your subscription to {name}": "Confirmez votre inscription à {name}",
    "Confirmation links are valid for a few days. Ask for a new one:": (
        "Les liens de confirmation sont valables quelques jours. Demandez-en un nouveau :"
    ),
    "Do you want to stop receiving this newsletter?": "Voulez-vous ne plus recevoir cette lettre ?",
    "Email address": "Adresse e-mail",
    "Every Sunday, a short selection of links worth reading, with a few words on each.": (
        "Chaque dimanche, une courte sélection de liens à lire, avec quelques mots sur chacun."
    ),
    "Feed": "Flux",
    "Latest issue": "Dernier numéro",
    "Leave this field empty": "Laissez ce champ vide",
    "Name (optional)": "Nom (facultatif)",
    "No issue has been sent yet.": "Aucun numéro n’a encore été envoyé.",
    "No, keep me subscribed": "Non, je reste inscrit·e",
    "Page not found": "Page introuvable",
    "Please enter your email address.": "Indiquez votre adresse e-mail.",
    "Please try again": "Veuillez réessayer",
    "Press the button to start receiving the newsletter.": (
        "Appuyez sur le bouton pour commencer à recevoir la lettre."
    ),
    "Send me a new link": "M’envoyer un nouveau lien",
    "Subscribe": "S’inscrire",
    "Subscription confirmed": "Inscription confirmée",
    "Thank you! You will receive the next issue. A welcome email is on its way.": (
        "Merci ! Vous recevrez le prochain numéro. Un e-mail de bienvenue est en route."
    ),
    "The form could not be read.": "Le formulaire n’a pas pu être lu.",
    "The form expired or came from another site. Reload the page and send it again.": (
        "Le formulaire a expiré ou vient d’un autre site. Rechargez la page et "
        "envoyez-le à nouveau."
    ),
    "The link may have been cut by your mail program. Copy the whole link and try again.": (
        "Votre messagerie a peut-être coupé le lien. Copiez le lien en entier et réessayez."
    ),
    "This email address is not valid. Check it and try again.": (
        "Cette adresse e-mail n’est pas valide. Vérifiez-la et réessayez."
    ),
    "This field is too long.": "Ce champ est trop long.",
    "This link has expired": "Ce lien a expiré",
    "This link is not valid": "Ce lien n’est pas valide",
    "This name is too long.": "Ce nom est trop long.",
    "Too many requests": "Trop de demandes",
    "Too many sign-ups from your network. Please wait a few minutes and try again.": (
        "Trop d’inscriptions depuis votre réseau. Patientez quelques minutes et réessayez."
    ),
    "Unsubscribe me": "Me désabonner",
    "We will send you an email to confirm. You can leave at any time with one click.": (
        "Nous vous enverrons un e-mail de confirmation. Vous pourrez partir à "
        "tout moment en un clic."
    ),
    "You are unsubscribed": "Vous êtes désabonné·e",
    "You will receive no more emails from this newsletter.": (
        "Vous ne recevrez plus aucun e-mail de cette lettre."
    ),
    "One click to confirm your subscription.": "Un clic pour confirmer votre inscription.",
    "Someone, probably you, asked to receive %(name)s at this address.": (
        "Quelqu’un, sans doute vous, a demandé à recevoir %(name)s à cette adresse."
    ),
    (
        "This link is valid for %(days)s days. If you did not ask for anything,"
        " ignore this email: you will receive nothing more."
    ): (
        "Ce lien est valable %(days)s jours. Si vous n’avez rien demandé, "
        "ignorez cet e-mail : vous ne recevrez rien de plus."
    ),
    "You receive this email because your address was entered on the sign-up form of %(name)s.": (
        "Vous recevez cet e-mail parce que votre adresse a été saisie dans le "
        "formulaire d’inscription de %(name)s."
    ),
    "Welcome to {name}": "Bienvenue dans {name}",
    "Your subscription is confirmed.": "Votre inscription est confirmée.",
    "Your subscription is confirmed. The next issue arrives on Sunday.": (
        "Votre inscription est confirmée. Le prochain numéro arrive dimanche."
    ),
    "While you wait, here is the latest issue:": "En attendant, voici le dernier numéro :",
    # newsletter/inputs.py, services/sends.py, schedule/dispatch.py: refused input, send guards,
    # the way out of a send that cannot prepare its message
    "must be a whole number from 1 to %(limit)s": "doit être un nombre entier de 1 à %(limit)s",
    "must be a whole number from 0 to %(limit)s": "doit être un nombre entier de 0 à %(limit)s",
    "must be a whole number from %(low)s to %(high)s": (
        "doit être un nombre entier de %(low)s à %(high)s"
    ),
    "must be between %(earliest)s and %(latest)s": (
        "doit être entre le %(earliest)s et le %(latest)s"
    ),
    "contains characters that are not valid text": (
        "contient des caractères qui ne sont pas du texte valide"
    ),
    "must not contain control characters (found %(code)s)": (
        "ne doit pas contenir de caractères de contrôle (trouvé %(code)s)"
    ),
    "must be at most %(limit)s bytes": "doit faire au plus %(limit)s octets",
    "is not valid JSON": "n’est pas du JSON valide",
    "is nested more than %(limit)s levels deep": "est imbriqué sur plus de %(limit)s niveaux",
    "no active subscriber would receive this issue: nothing was sent, and the issue and its "
    "links stay queued": (
        "aucun abonné actif ne recevrait ce numéro : rien n’a été envoyé, le numéro et ses "
        "liens restent en attente"
    ),
    "issue #%(number)s is already being sent (send %(run_id)s, started at %(started)s UTC): "
    "follow it on its progress page": (
        "le numéro %(number)s est déjà en cours d’envoi (envoi %(run_id)s, commencé à "
        "%(started)s UTC) : suivez-le sur sa page de progression"
    ),
    "another send of this issue started at the same moment; see the list of sends": (
        "un autre envoi de ce numéro a commencé au même instant ; voyez la liste des envois"
    ),
    "no active subscriber; the links stay queued": (
        "aucun abonné actif ; les liens restent en attente"
    ),
    "send %(run_id)s is not the send of an issue": "l’envoi %(run_id)s n’est pas celui d’un numéro",
    "send %(run_id)s must be paused first (it is %(status)s)": (
        "l’envoi %(run_id)s doit d’abord être mis en pause (il est %(status)s)"
    ),
    "%(count)s recipients already got send %(run_id)s: it can only be resumed": (
        "%(count)s destinataires ont déjà reçu l’envoi %(run_id)s : il ne peut qu’être repris"
    ),
    "send cancelled by an editor": "envoi annulé par un éditeur",
    "cancelled by an editor": "annulé par un éditeur",
    "not a terminal, so nobody can confirm: add --yes to send without asking": (
        "pas de terminal, personne ne peut confirmer : ajoutez --yes pour envoyer sans question"
    ),
    "nothing was sent": "rien n’a été envoyé",
}
