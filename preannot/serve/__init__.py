"""``preannot serve``: the configured pipeline as a Label Studio ML backend (predictions when a
task opens, interactive prompts, learning from saved annotations)."""

REQUIRES = ("harvest", "training")
