"""Serving stage: ``veille predict`` (batch inference over articles) and ``veille serve`` (HTTP API)."""
