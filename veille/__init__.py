"""veille: French information extraction from news (entities and relations)."""

__version__ = "0.1.0"
