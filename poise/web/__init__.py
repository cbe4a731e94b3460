"""The console: poise in a browser, for the people who approve plans and watch models.

Server-rendered pages (FastAPI + Jinja2) that work without JavaScript, a small script of our own
for the live parts, and the same functions the CLI calls underneath (``Lifecycle``, ``Journal``,
``registry.versions``), so the console and the CLI can never disagree.
"""
