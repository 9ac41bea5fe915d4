"""Annotation stage: the scheme (schema), the gold corpus format, article ingestion and
sentence splitting, and the Label Studio loop. Every other stage builds on these types."""
