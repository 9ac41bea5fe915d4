"""Models stage: base-model resolution (hub id, local directory, e5-small-offline), the joint
entity + relation model, its checkpoint directory and the predictor used by every caller."""
