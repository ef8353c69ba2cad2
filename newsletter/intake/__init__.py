"""Link intake: the safe fetcher, page metadata, URL canonicalisation, feeds and click counts.

Nothing here knows about the CLI or the web; ``newsletter.services.intake`` is the way in.
"""
