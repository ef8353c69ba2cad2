"""French strings of the editor dashboard (English msgids), merged over the product catalogue."""

from __future__ import annotations

MESSAGES: dict[str, str | tuple[str, str]] = {
    "Sign in": "Se connecter",
    "Sign out": "Se déconnecter",
    "Email": "Adresse e-mail",
    "Password": "Mot de passe",
    "Wrong email or password.": "Adresse ou mot de passe incorrect.",
    "Too many attempts; try again in a few minutes.": (
        "Trop de tentatives ; réessayez dans quelques minutes."
    ),
    "Next issue": "Prochain numéro",
    "Sends": "Envois",
    "Schedule": "Calendrier",
    "Subscribers": "Abonnés",
    "Editor dashboard": "Tableau de bord",
}
