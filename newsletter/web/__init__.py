"""The ASGI app (Starlette): public pages, the outbox, and later the admin and API."""
