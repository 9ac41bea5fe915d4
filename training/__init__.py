"""Training stage: ``veille train`` (config presets, accelerate loop) and ``veille evaluate``."""
