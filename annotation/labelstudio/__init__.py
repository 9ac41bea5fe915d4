"""The Label Studio loop: labelling config from the schema, a local server, push of
articles/gold/predictions as tasks, pull/convert of annotations back to gold JSONL,
and inter-annotator agreement. Label Studio itself runs from its own environment."""
