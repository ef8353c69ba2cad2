"""Message catalogues, one module per language: ``MESSAGES = {"English msgid": "translation"}``.

Plural entries map the singular msgid to a ``(singular, plural)`` tuple of translations.
"""
