"""The return path: bounces, complaints and mailto unsubscribes that come back.

Four ways in (``lmtp``, ``stdin`` through the CLI, ``imap``, provider webhooks in
``newsletter.web.hooks``), one processor (``newsletter.services.inbound``): every message is
recorded (``models.InboundMessage``), classified (``classify``, pure) and acted on
(``actions``) in one transaction.
"""
