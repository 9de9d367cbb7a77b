"""Production review: the calibrated probability that a task is right, the threshold whose
precision is guaranteed, routing, release and audits, and the drift monitor that watches them."""

REQUIRES = ("harvest", "training")
