"""How work runs: Prefect flows over the tools and the registry."""

import poise.settings  # noqa: F401 - puts the library defaults in the environment before Prefect is imported
