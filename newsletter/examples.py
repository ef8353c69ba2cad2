"""Example content that ``newsletter init`` queues, so a newcomer sees a real issue at once.

Titles and sources are real articles about civic tech; the excerpts are written for this
project (not quoted from the articles).
"""

from __future__ import annotations

from sqlalchemy import Engine

from newsletter.clock import utc_now
from newsletter.content import queue_link, set_intro
from newsletter.db import transaction

EXAMPLE_INTRO = (
    "Bonjour à toutes et à tous,\n\n"
    "Voici la sélection de la semaine : des applications pour parler à sa mairie, une primaire "
    "citoyenne qui avance et un pays qui choisit le logiciel libre. Bonne lecture, et "
    "n’hésitez pas à répondre à ce message pour proposer un lien."
)

EXAMPLE_LINKS: tuple[dict[str, str], ...] = (
    {
        "url": "https://www.lemonde.fr/",
        "title": "« Civic Tech » : des applis pour doper la démocratie en ville",
        "source": "Le Monde",
        "excerpt": (
            "Plusieurs jeunes entreprises proposent aux communes des applications pour "
            "consulter les habitants, signaler un problème de voirie ou voter sur un projet. "
            "L’article se demande si ces outils feront revenir aux urnes ceux qui s’en sont "
            "éloignés."
        ),
    },
    {
        "url": "https://www.wedemain.fr/",
        "title": "200 candidats, 50 000 électeurs : LaPrimaire.org poursuit sa route vers 2017",
        "source": "We Demain",
        "excerpt": (
            "Une primaire ouverte à tous les citoyens a déjà reçu des centaines de "
            "candidatures. Le portrait des candidats montre pourtant les mêmes déséquilibres "
            "que la vie politique classique : peu de femmes, beaucoup de Franciliens."
        ),
    },
    {
        "url": "https://www.slate.fr/",
        "title": "La France peut-elle s’inspirer du community organizing à l’américaine ?",
        "source": "Slate",
        "excerpt": (
            "Plutôt qu’une cause fixée d’avance, le community organizing part des demandes "
            "des habitants et forme des responsables locaux pour les porter. Une méthode "
            "venue de Chicago qui trouve des adeptes dans quelques quartiers français."
        ),
    },
    {
        "url": "https://www.numerama.com/",
        "title": "La Bulgarie impose l’open source dans l’administration",
        "source": "Numerama",
        "excerpt": (
            "Une modification de la loi sur la gouvernance numérique oblige désormais les "
            "logiciels commandés par l’État bulgare à être publiés sous licence libre, code "
            "source compris."
        ),
    },
)


def queue_example_content(engine: Engine) -> int:
    """Queue the example links and intro for the next issue; return how many links."""
    now = utc_now()
    with transaction(engine) as session:
        for example in EXAMPLE_LINKS:
            queue_link(session, now=now, tags=("exemple",), **example)
        set_intro(session, EXAMPLE_INTRO, now)
    return len(EXAMPLE_LINKS)
